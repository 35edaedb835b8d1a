#!/usr/bin/env bash
# Training labels: trained bit-widths (toward 4 weight bits) fitted on the data set's labels vs on the float model's
# own predictions (--generated_labels, what one can do without labelled data).
#   run_quant/generated_labels.sh [IMAGENET_DIR]
source "$(dirname "$0")/settings.sh"
STUDY_FLAGS=(--noise_type none --train_bitwidth --weight_bits_only --bit_rounding round --target_weight_bits 4
             --lambd 5 --lr 0.05 --train_batches "${TRAIN_BATCHES:-30}")
setting dataset_labels --no-generated_labels
setting generated_labels --generated_labels
compare_settings dataset_labels generated_labels
