#!/usr/bin/env bash
# Trained bit-widths rounded to any integer vs restricted to {2, 4, 8} (--bit_rounding discrete), toward 4 weight bits
# (activations at 8 bits).
#   run_quant/discrete_bitwidth.sh [IMAGENET_DIR]
source "$(dirname "$0")/settings.sh"
STUDY_FLAGS=(--noise_type none --train_bitwidth --weight_bits_only --target_weight_bits 4 --lambd 5 --lr 0.05
             --train_batches "${TRAIN_BATCHES:-30}")
setting integer --bit_rounding round
setting discrete --bit_rounding discrete
compare_settings integer discrete
