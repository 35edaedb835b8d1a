#!/usr/bin/env bash
# Baselines every study is measured against: the float model through the simulator (no quantizer, no noise; equal
# to the plain float model) and W8A8 post-training quantization without noise, with quantization cards.
#   run_noise/baseline.sh [IMAGENET_DIR]
source "$(dirname "$0")/common.sh"
FLAGS=(--noise_type none --weight_bits 8 none --act_bits 8 none)
if [[ -n $DATA ]]; then
    imagenet "" "${FLAGS[@]}"
else
    for preset in "${OFFLINE[@]}"; do
        offline "$preset" "" "${FLAGS[@]}"
    done
fi
