#!/usr/bin/env bash
# MiniLM at W8A8 without noise: per-tensor vs per-channel weights, MSE / percentile / dynamic ranges, 16-bit LN outputs.
# Each setting's run folders, then a comparison per model (noisesim/configs/studies/minilm_remedies.yaml).
#   run_quant/minilm_remedies.sh [IMAGENET_DIR] [--presets ...] [--models ...] [-- main.py flags]
source "$(dirname "$0")/../run_noise/common.sh"
study minilm_remedies "$@"
