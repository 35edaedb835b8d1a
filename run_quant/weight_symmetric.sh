#!/usr/bin/env bash
# Weight symmetry: symmetric (zero point 0, the default) vs asymmetric weight quantizers.
#   run_quant/weight_symmetric.sh [IMAGENET_DIR]
source "$(dirname "$0")/settings.sh"
setting symmetric
setting asymmetric --no-weight_symmetric
compare_settings symmetric asymmetric
