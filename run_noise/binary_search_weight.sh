#!/usr/bin/env bash
# Iso-accuracy energy per MAC under weight noise by geometric bisection (noisesim/configs/studies/binary_search_weight.yaml).
#   run_noise/binary_search_weight.sh [IMAGENET_DIR] [--presets ...] [--models ...] [-- main.py flags]
source "$(dirname "$0")/common.sh"
study binary_search_weight "$@"
