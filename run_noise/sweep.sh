# Sourced by run_noise/{thermal,shot,weight}.sh after they set NOISE and the energy grids GRID_* (photons/MAC):
# accuracy against average energy for uniform energies and for energies trained per layer and per output channel
# under the constrained loss (lambda 5), with per-channel SNRs recorded for the SNR plots. Run folders:
# logs/<NOISE>/<model>-<data> (shared with run_noise/plot_emacs.sh).
LOG_DIR="$LOG_ROOT/$NOISE"
SWEEP=(--noise_type "$NOISE" --constrained_loss --lambd 5 --lr 0.05 --record_snr --allocation uniform trained)
if [[ -n $DATA ]]; then
    imagenet "" "${SWEEP[@]}" --granularity layer channel --target_emac $GRID_IMAGENET --train_batches 300 \
        --eval_batches 20 --mc_repeats 3
else
    offline FMNIST "" "${SWEEP[@]}" --granularity layer channel --target_emac $GRID_FMNIST --train_batches 60
    offline EFFNET "" "${SWEEP[@]}" --granularity layer channel --target_emac $GRID_EFFNET \
        --train_batches 15 --mc_repeats 2
    offline MINILM "" "${SWEEP[@]}" --target_emac $GRID_MINILM --train_batches 20
fi
