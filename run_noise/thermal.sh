#!/usr/bin/env bash
# thermal noise: accuracy against average energy per MAC, uniform vs trained per layer vs trained per channel
# (see run_noise/sweep.sh).   run_noise/thermal.sh [IMAGENET_DIR]     env: GRID_*, MODELS, LOG_DIR, PYTHON
source "$(dirname "$0")/common.sh"
NOISE=thermal
GRID_IMAGENET="${GRID_IMAGENET:-10 20 50 100 200 500 1000 2000}"
GRID_FMNIST="${GRID_FMNIST:-2 3 5 10 20 30 50 100 300}"
GRID_EFFNET="${GRID_EFFNET:-100 150 200 300 500 1000 2000 5000}"
GRID_MINILM="${GRID_MINILM:-10 30 100 300 1000 3000 10000}"
source run_noise/sweep.sh
