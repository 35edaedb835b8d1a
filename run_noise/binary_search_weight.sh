#!/usr/bin/env bash
# Iso-accuracy energy per MAC under weight noise (see run_noise/search.sh).
#   run_noise/binary_search_weight.sh [IMAGENET_DIR]     env: ACC_DROP, STEPS, MODELS, LOG_DIR, PYTHON
source "$(dirname "$0")/common.sh"
NOISE=weight
readonly E_MIN_IMAGENET=1 E_MAX_IMAGENET=1e4
readonly E_MIN_FMNIST=2 E_MAX_FMNIST=500
readonly E_MIN_EFFNET=10 E_MAX_EFFNET=1e5
readonly E_MIN_MINILM=100 E_MAX_MINILM=1e6
source run_noise/search.sh
