#!/usr/bin/env bash
# Reference accuracies without noise, float and W8A8 (noisesim/configs/studies/baseline.yaml).
#   run_noise/baseline.sh [IMAGENET_DIR] [--presets ...] [--models ...]
source "$(dirname "$0")/common.sh"
study baseline "$@"
