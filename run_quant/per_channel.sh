#!/usr/bin/env bash
# Weight granularity: one weight range per tensor vs per output channel, across bit-widths.
# Each setting's run folders, then a comparison per model (noisesim/configs/studies/per_channel.yaml).
#   run_quant/per_channel.sh [IMAGENET_DIR] [--presets ...] [--models ...] [-- main.py flags]
source "$(dirname "$0")/../run_noise/common.sh"
study per_channel "$@"
