#!/usr/bin/env bash
# Weight symmetry: symmetric (zero point 0, the default) vs asymmetric weight quantizers.
# Each setting's run folders, then a comparison per model (noisesim/configs/studies/weight_symmetric.yaml).
#   run_quant/weight_symmetric.sh [IMAGENET_DIR] [--presets ...] [--models ...] [-- main.py flags]
source "$(dirname "$0")/../run_noise/common.sh"
study weight_symmetric "$@"
