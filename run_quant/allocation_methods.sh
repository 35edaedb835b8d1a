#!/usr/bin/env bash
# Weight bit-width allocation without noise: every method against uniform under average-bit budgets
# (noisesim/configs/studies/allocation_methods_bits.yaml; run folders logs/allocation_methods/<model>-methods).
#   run_quant/allocation_methods.sh [IMAGENET_DIR] [--presets fmnist effnet minilm] [-- main.py flags]
source "$(dirname "$0")/../run_noise/common.sh"
study allocation_methods_bits "$@"
