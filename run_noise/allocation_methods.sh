#!/usr/bin/env bash
# Allocation methods side by side on one protocol: uniform, trained (constrained loss), greedy (per-layer
# sensitivity + epsilon), hessian (Hutchinson + integer program) and closed_form (Lagrangian optimum with Fisher
# sensitivities), per layer and (where the method allows) per output channel, for thermal and shot noise. Each
# method's accuracy-vs-energy curve gives its iso-accuracy energy at float - ACC_DROP (savings.md, with intervals)
# and every row carries the method's compute (alloc_seconds, alloc_forward, alloc_backward).
#   run_noise/allocation_methods.sh [IMAGENET_DIR]     env: NOISES, PRESETS ("FMNIST EFFNET"), MC_REPEATS, MODELS,
#                                                      ALLOCATIONS (a subset of the methods: rerun them in place),
#                                                      LOG_DIR, PYTHON
source "$(dirname "$0")/common.sh"
read -r -a NOISES <<< "${NOISES:-thermal shot}"
read -r -a PRESETS <<< "${PRESETS:-FMNIST EFFNET}"
declare -A GRID_FMNIST=([thermal]="3 5 10 20 50" [shot]="10 30 100 300 1000")
declare -A GRID_EFFNET=([thermal]="150 200 300 500 1000" [shot]="30 60 100 200 300 600")
declare -A GRID_IMAGENET=([thermal]="20 50 100 200 500" [shot]="2 5 10 20 50")
read -r -a ALLOCATIONS <<< "${ALLOCATIONS:-uniform trained greedy hessian closed_form}"
METHODS=(--allocation "${ALLOCATIONS[@]}" --granularity layer channel --constrained_loss
         --lambd 5 --lr 0.05 --acc_drop "${ACC_DROP:-0.01}" --no-compare_uniform)
declare -A DRAWS=([FMNIST]=2 [EFFNET]=3)
declare -A PRESET_FLAGS=([FMNIST]="--train_batches 100"
                         [EFFNET]="--train_batches 40 --converge_window 10 --sensitivity_batches 2 --hutchinson_iters 20")
for noise in "${NOISES[@]}"; do
    if [[ -n $DATA ]]; then
        imagenet "-$noise" "${METHODS[@]}" --noise_type "$noise" --target_emac ${GRID_IMAGENET[$noise]} \
            --train_batches 300 --eval_batches 20 --mc_repeats "${MC_REPEATS:-2}"
    else
        for preset in "${PRESETS[@]}"; do
            grid="GRID_$preset[$noise]"
            offline "$preset" "-$noise" "${METHODS[@]}" --noise_type "$noise" --target_emac ${!grid} \
                ${PRESET_FLAGS[$preset]} --mc_repeats "${MC_REPEATS:-${DRAWS[$preset]}}"
        done
    fi
done
