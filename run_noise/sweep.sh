# Sourced by run_noise/{thermal,shot,weight}.sh after they set NOISE and the energy grids GRID_* (photons/MAC):
# accuracy against average energy for uniform energies and for energies trained per layer and per output channel
# under the constrained loss (lambda 5; each target continued from the next higher one's solution), with
# per-channel SNRs recorded for the SNR plots, and the iso-accuracy energies and savings at float - ACC_DROP
# (1 point; savings.md, iso_accuracy.png) from curves fitted to every allocation's points. Run folders:
# logs/<NOISE>/<model>-<data> (shared with run_noise/plot_emacs.sh).
LOG_DIR="$LOG_ROOT/$NOISE"
SWEEP=(--noise_type "$NOISE" --constrained_loss --lambd 5 --lr 0.05 --record_snr --allocation uniform trained
       --granularity layer channel --acc_drop "${ACC_DROP:-0.01}")
if [[ -n $DATA ]]; then
    imagenet "" "${SWEEP[@]}" --target_emac $GRID_IMAGENET --train_batches 300 --eval_batches 20 --mc_repeats 3
else
    offline FMNIST "" "${SWEEP[@]}" --target_emac $GRID_FMNIST --train_batches 100 --mc_repeats 2 --no-compare_uniform
    offline EFFNET "" "${SWEEP[@]}" --target_emac $GRID_EFFNET --train_batches 40 --mc_repeats 3 --no-compare_uniform
    offline MINILM "" "${SWEEP[@]}" "${MINILM_W8A8[@]}" --target_emac $GRID_MINILM --train_batches 40 --mc_repeats 2 \
        --no-compare_uniform
fi
