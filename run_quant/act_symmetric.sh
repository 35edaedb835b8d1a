#!/usr/bin/env bash
# Activation symmetry: asymmetric (zero point) vs symmetric activation quantizers, PTQ without noise.
# Each setting's run folders, then a comparison per model (noisesim/configs/studies/act_symmetric.yaml).
#   run_quant/act_symmetric.sh [IMAGENET_DIR] [--presets ...] [--models ...] [-- main.py flags]
source "$(dirname "$0")/../run_noise/common.sh"
study act_symmetric "$@"
