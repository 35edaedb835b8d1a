#!/usr/bin/env bash
# Iso-accuracy energy per MAC under shot noise by geometric bisection (noisesim/configs/studies/binary_search_shot.yaml).
#   run_noise/binary_search_shot.sh [IMAGENET_DIR] [--presets ...] [--models ...] [-- main.py flags]
source "$(dirname "$0")/common.sh"
study binary_search_shot "$@"
