#!/usr/bin/env bash
# Training labels: trained bit-widths fitted on the data set's labels vs on the float model's predictions.
# Each setting's run folders, then a comparison per model (noisesim/configs/studies/generated_labels.yaml).
#   run_quant/generated_labels.sh [IMAGENET_DIR] [--presets ...] [--models ...] [-- main.py flags]
source "$(dirname "$0")/../run_noise/common.sh"
study generated_labels "$@"
