#!/usr/bin/env bash
# weight noise: accuracy against average energy per MAC, uniform vs trained per layer vs trained per channel,
# and the iso-accuracy energies and savings (noisesim/configs/studies/weight.yaml).
#   run_noise/weight.sh [IMAGENET_DIR] [--presets ...] [--models ...] [-- main.py flags]
source "$(dirname "$0")/common.sh"
study weight "$@"
