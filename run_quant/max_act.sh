#!/usr/bin/env bash
# Activation-bits metric of trained bit-widths: the average activation bits vs the largest map's (W4 / A6).
# Each setting's run folders, then a comparison per model (noisesim/configs/studies/max_act.yaml).
#   run_quant/max_act.sh [IMAGENET_DIR] [--presets ...] [--models ...] [-- main.py flags]
source "$(dirname "$0")/../run_noise/common.sh"
study max_act "$@"
