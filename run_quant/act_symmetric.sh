#!/usr/bin/env bash
# Activation symmetry: asymmetric (zero point) vs symmetric activation quantizers.
#   run_quant/act_symmetric.sh [IMAGENET_DIR]
source "$(dirname "$0")/settings.sh"
setting asymmetric
setting symmetric --act_symmetric
compare_settings asymmetric symmetric
