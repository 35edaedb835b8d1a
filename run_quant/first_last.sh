#!/usr/bin/env bash
# First/last layer precision: quantized like every other layer, held at 8 bits, or left in float.
# Each setting's run folders, then a comparison per model (noisesim/configs/studies/first_last.yaml).
#   run_quant/first_last.sh [IMAGENET_DIR] [--presets ...] [--models ...] [-- main.py flags]
source "$(dirname "$0")/../run_noise/common.sh"
study first_last "$@"
