#!/usr/bin/env bash
# thermal noise: accuracy against average energy per MAC, uniform vs trained per layer vs trained per channel,
# and the iso-accuracy energies and savings (noisesim/configs/studies/thermal.yaml).
#   run_noise/thermal.sh [IMAGENET_DIR] [--presets ...] [--models ...] [-- main.py flags]
source "$(dirname "$0")/common.sh"
study thermal "$@"
