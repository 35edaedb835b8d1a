#!/usr/bin/env bash
# Weight granularity: one weight range per tensor vs per output channel, across weight/activation bit-widths.
#   run_quant/per_channel.sh [IMAGENET_DIR]
source "$(dirname "$0")/settings.sh"
setting per_tensor
setting per_channel --weight_per_channel
compare_settings per_tensor per_channel
