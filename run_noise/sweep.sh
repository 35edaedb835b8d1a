# Sourced by run_noise/{thermal,shot,weight}.sh after they set NOISE and the energy grids GRID_* (photons/MAC):
# accuracy against average energy for uniform energies and for energies trained per layer and per output channel
# under the constrained loss (lambda 5; each target continued from the next higher one's solution), with
# per-channel SNRs recorded for the SNR plots, and the iso-accuracy energies and savings at float - ACC_DROP
# (1 point; savings.md, iso_accuracy.png) from curves fitted to every allocation's points. Run folders:
# logs/<NOISE>/<model>-<data> (shared with run_noise/plot_emacs.sh).
#   env: PRESETS (offline models, e.g. "FMNIST EFFNET"), MC_REPEATS, MINILM_EVAL_BATCHES, GRID_*, ACC_DROP
LOG_DIR="$LOG_ROOT/$NOISE"
SWEEP=(--noise_type "$NOISE" --constrained_loss --lambd 5 --lr 0.05 --record_snr --allocation uniform trained
       --granularity layer channel --acc_drop "${ACC_DROP:-0.01}")
# PRESETS (default all three) picks the offline models; MC_REPEATS overrides each preset's noise draws.
read -r -a PRESETS <<< "${PRESETS:-${OFFLINE[*]}}"
declare -A DRAWS=([FMNIST]=2 [EFFNET]=3 [MINILM]=2)
declare -A STEPS=([FMNIST]=100 [EFFNET]=40 [MINILM]=40)
# convergence window: two windows must fit in the step cap for training to be able to stop early
declare -A WINDOW=([FMNIST]=25 [EFFNET]=10 [MINILM]=10)
declare -A GRID=([FMNIST]=$GRID_FMNIST [EFFNET]=$GRID_EFFNET [MINILM]=$GRID_MINILM)
declare -A EXTRA=([FMNIST]="" [EFFNET]="" [MINILM]="${MINILM_W8A8[*]}")
if [[ -n $DATA ]]; then
    imagenet "" "${SWEEP[@]}" --target_emac $GRID_IMAGENET --train_batches 300 --eval_batches 20 \
        --mc_repeats "${MC_REPEATS:-3}"
else
    for preset in "${PRESETS[@]}"; do
        offline "$preset" "" "${SWEEP[@]}" ${EXTRA[$preset]} --target_emac ${GRID[$preset]} \
            --train_batches "${STEPS[$preset]}" --converge_window "${WINDOW[$preset]}" --mc_repeats "${MC_REPEATS:-${DRAWS[$preset]}}" --no-compare_uniform
    done
fi
