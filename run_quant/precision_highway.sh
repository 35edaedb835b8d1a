#!/usr/bin/env bash
# Precision highway: residual adds and concatenations kept in float (the default) vs quantized too.
# MiniLM is left out: Hugging Face's encoder cannot be traced by torch.fx, so its residual adds cannot be rewired.
#   run_quant/precision_highway.sh [IMAGENET_DIR]
source "$(dirname "$0")/settings.sh"
PRESETS=(FMNIST EFFNET)
setting highway
setting quantized_residual --quantize_residual
compare_settings highway quantized_residual
