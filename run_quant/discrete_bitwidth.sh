#!/usr/bin/env bash
# Trained weight bit-widths toward 4 bits: rounded to integers vs to the discrete set {2, 4, 8}.
# Each setting's run folders, then a comparison per model (noisesim/configs/studies/discrete_bitwidth.yaml).
#   run_quant/discrete_bitwidth.sh [IMAGENET_DIR] [--presets ...] [--models ...] [-- main.py flags]
source "$(dirname "$0")/../run_noise/common.sh"
study discrete_bitwidth "$@"
