#!/usr/bin/env bash
# Weight bit-width allocation methods side by side (no noise; activations at 8 bits, per-channel weights):
# uniform (floor of the budget), trained (learnable log2 bits under the constrained loss), greedy (per-layer
# sensitivity, layers lowered from floor(b)+1 to floor(b)-1 bits least sensitive first until the budget is met),
# hessian (HAWQ-V3: Hutchinson traces and an integer program) and closed_form (reverse water-filling on the same
# traces), at average weight-bit budgets (per preset: ResNet-20 2.5-5 bits, EfficientNet-Lite0 4.5-7, whose uniform
# 4-bit weights keep 10%; MiniLM and ImageNet models 3-6; BUDGETS overrides them all). Plots accuracy against average weight
# bits for every method.
#   run_quant/allocation_methods.sh [IMAGENET_DIR]     env: BUDGETS, PRESETS, MODELS, LOG_DIR, PYTHON,
#                                                      ALLOCATIONS (a subset of the methods)
PRESETS="${PRESETS:-FMNIST EFFNET}"
source "$(dirname "$0")/settings.sh"
declare -A BUDGETS_OF=([FMNIST]="2.5 3 3.5 4 5" [EFFNET]="4.5 5 5.5 6 7" [MINILM]="3 4 5 6" [IMAGENET]="3 4 5 6")
declare -A PRESET_FLAGS=([FMNIST]="--sensitivity_batches 4"
                         [EFFNET]="--sensitivity_batches 2 --hutchinson_iters 20"
                         [MINILM]="--sensitivity_batches 4" [IMAGENET]="--sensitivity_batches 4")
read -r -a ALLOCATIONS <<< "${ALLOCATIONS:-uniform trained greedy hessian closed_form}"
STUDY_FLAGS=(--noise_type none --weight_bits 8 --act_bits 8 --weight_per_channel --allocate weight_bits
             --allocation "${ALLOCATIONS[@]}" --lambd 5 --lr 0.05
             --train_batches "${TRAIN_BATCHES:-60}")
# methods PRESET: the study with that preset's budgets and sensitivity settings
methods() {
    read -r -a budgets <<< "${BUDGETS:-${BUDGETS_OF[$1]}}"
    if [[ $1 == IMAGENET ]]; then
        imagenet "-methods" "${STUDY_FLAGS[@]}" --target_weight_bits "${budgets[@]}" ${PRESET_FLAGS[$1]}
    else
        offline "$1" "-methods" "${STUDY_FLAGS[@]}" --target_weight_bits "${budgets[@]}" ${PRESET_FLAGS[$1]}
    fi
}
if [[ -n $DATA ]]; then
    methods IMAGENET
else
    for preset in "${PRESETS[@]}"; do methods "$preset"; done
fi
