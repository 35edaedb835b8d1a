#!/usr/bin/env bash
# Weight bit-width allocation methods side by side (no noise; activations at 8 bits, per-channel weights):
# uniform (floor of the budget), trained (learnable log2 bits under the constrained loss), greedy (per-layer
# sensitivity, layers lowered from floor(b)+1 to floor(b)-1 bits least sensitive first until the budget is met),
# hessian (HAWQ-V3: Hutchinson traces and an integer program) and closed_form (reverse water-filling on the same
# traces), at average weight-bit budgets BUDGETS. Plots accuracy against average weight bits for every method.
#   run_quant/allocation_methods.sh [IMAGENET_DIR]     env: BUDGETS, PRESETS, MODELS, LOG_DIR, PYTHON
PRESETS="${PRESETS:-FMNIST EFFNET}"
source "$(dirname "$0")/settings.sh"
read -r -a BUDGETS <<< "${BUDGETS:-2.5 3 3.5 4 5}"
STUDY_FLAGS=(--noise_type none --weight_bits 8 --act_bits 8 --weight_per_channel --allocate weight_bits
             --target_weight_bits "${BUDGETS[@]}" --allocation uniform trained greedy hessian closed_form
             --lambd 5 --lr 0.05 --train_batches "${TRAIN_BATCHES:-60}" --sensitivity_batches 4)
setting methods
