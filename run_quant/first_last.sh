#!/usr/bin/env bash
# First/last layer precision: quantized like every other layer, held at 8 bits, or left in float.
#   run_quant/first_last.sh [IMAGENET_DIR]
source "$(dirname "$0")/settings.sh"
setting same
setting 8bit --first_last_bits 8
setting float --ignore first last
compare_settings same 8bit float
