#!/usr/bin/env bash
# Iso-accuracy energy per MAC under thermal noise by geometric bisection (noisesim/configs/studies/binary_search_thermal.yaml).
#   run_noise/binary_search_thermal.sh [IMAGENET_DIR] [--presets ...] [--models ...] [-- main.py flags]
source "$(dirname "$0")/common.sh"
study binary_search_thermal "$@"
