#!/usr/bin/env bash
# Activation-bits metric for trained bit-widths: the penalty on the average activation bits (weighted by
# activation elements) vs on the bits of the largest activation map (--max_act), targets W4 / A6.
#   run_quant/max_act.sh [IMAGENET_DIR]
source "$(dirname "$0")/settings.sh"
STUDY_FLAGS=(--noise_type none --train_bitwidth --bit_rounding round --target_weight_bits 4 --target_act_bits 6
             --lambd 5 --lr 0.05 --train_batches "${TRAIN_BATCHES:-30}")
setting average
setting max --max_act
compare_settings average max
