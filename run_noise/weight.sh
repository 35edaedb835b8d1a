#!/usr/bin/env bash
# weight noise: accuracy against average energy per MAC, uniform vs trained per layer vs trained per channel
# (see run_noise/sweep.sh).   run_noise/weight.sh [IMAGENET_DIR]     env: GRID_*, MODELS, LOG_DIR, PYTHON
source "$(dirname "$0")/common.sh"
NOISE=weight
GRID_IMAGENET="${GRID_IMAGENET:-1 2 5 10 20 50 100 200 500}"
GRID_FMNIST="${GRID_FMNIST:-3 5 10 20 50 100 300}"
GRID_EFFNET="${GRID_EFFNET:-1000 1500 2000 3000 5000 10000 20000 50000}"
GRID_MINILM="${GRID_MINILM:-20 30 50 100 300 1000 3000}"
source run_noise/sweep.sh
