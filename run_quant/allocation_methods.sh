#!/usr/bin/env bash
# Bit-width allocation without noise: every method against uniform under average weight-bit budgets, then under
# average activation-bit budgets (noisesim/configs/studies/allocation_methods_bits.yaml and
# allocation_methods_act_bits.yaml; run folders logs/allocation_methods/ and logs/allocation_methods_act_bits/).
#   run_quant/allocation_methods.sh [IMAGENET_DIR] [--presets fmnist effnet minilm] [-- main.py flags]
source "$(dirname "$0")/../run_noise/common.sh"
study allocation_methods_bits "$@"
study allocation_methods_act_bits "$@"
