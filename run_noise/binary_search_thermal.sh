#!/usr/bin/env bash
# Iso-accuracy energy per MAC under thermal noise (see run_noise/search.sh).
#   run_noise/binary_search_thermal.sh [IMAGENET_DIR]     env: ACC_DROP, STEPS, MODELS, LOG_DIR, PYTHON
source "$(dirname "$0")/common.sh"
NOISE=thermal
readonly E_MIN_IMAGENET=10 E_MAX_IMAGENET=1e4
readonly E_MIN_FMNIST=2 E_MAX_FMNIST=500
readonly E_MIN_EFFNET=30 E_MAX_EFFNET=3e4
readonly E_MIN_MINILM=1e3 E_MAX_MINILM=1e7
source run_noise/search.sh
