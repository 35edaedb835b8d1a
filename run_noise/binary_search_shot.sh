#!/usr/bin/env bash
# Iso-accuracy energy per MAC under shot noise (see run_noise/search.sh).
#   run_noise/binary_search_shot.sh [IMAGENET_DIR]     env: ACC_DROP, STEPS, MODELS, LOG_DIR, PYTHON
source "$(dirname "$0")/common.sh"
NOISE=shot
readonly E_MIN_IMAGENET=1 E_MAX_IMAGENET=1e3
readonly E_MIN_FMNIST=2 E_MAX_FMNIST=1000
readonly E_MIN_EFFNET=10 E_MAX_EFFNET=1e5
readonly E_MIN_MINILM=3 E_MAX_MINILM=3e3
source run_noise/search.sh
