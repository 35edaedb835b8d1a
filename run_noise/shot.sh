#!/usr/bin/env bash
# shot noise: accuracy against average energy per MAC, uniform vs trained per layer vs trained per channel
# (see run_noise/sweep.sh).   run_noise/shot.sh [IMAGENET_DIR]     env: GRID_*, MODELS, LOG_DIR, PYTHON
source "$(dirname "$0")/common.sh"
NOISE=shot
GRID_IMAGENET="${GRID_IMAGENET:-1 2 5 10 20 50 100 200}"
GRID_FMNIST="${GRID_FMNIST:-10 30 100 200 500 1000 3000}"
GRID_EFFNET="${GRID_EFFNET:-30 60 100 200 300 600 1000 3000}"
GRID_MINILM="${GRID_MINILM:-1 3 10 30 100 300 1000}"
source run_noise/sweep.sh
