#!/usr/bin/env bash
# Precision highway: residual adds and concatenations kept in float vs quantized too (not MiniLM).
# Each setting's run folders, then a comparison per model (noisesim/configs/studies/precision_highway.yaml).
#   run_quant/precision_highway.sh [IMAGENET_DIR] [--presets ...] [--models ...] [-- main.py flags]
source "$(dirname "$0")/../run_noise/common.sh"
study precision_highway "$@"
