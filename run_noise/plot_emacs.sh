#!/usr/bin/env bash
# Trained energy per MAC by layer (per layer and per channel, against uniform) for thermal, shot and weight noise
# at one representative target energy per model. The points are those of run_noise/{thermal,shot,weight}.sh (same
# run folders, so whatever those scripts already ran is reused); the figures are collected in logs/plot_emacs/.
#   run_noise/plot_emacs.sh [IMAGENET_DIR]     env: E_IMAGENET, MODELS, LOG_DIR, PYTHON
source "$(dirname "$0")/common.sh"
FIGURES="$LOG_DIR"
declare -A E_FMNIST=([thermal]=10 [shot]=10 [weight]=10) E_EFFNET=([thermal]=300 [shot]=300 [weight]=3000)
declare -A E_MINILM=([thermal]=1e5 [shot]=10 [weight]=1e3) E_IMAGENET_DEFAULT=([thermal]=100 [shot]=10 [weight]=20)
for NOISE in thermal shot weight; do
    GRID_IMAGENET="${E_IMAGENET:-${E_IMAGENET_DEFAULT[$NOISE]}}"
    GRID_FMNIST=${E_FMNIST[$NOISE]} GRID_EFFNET=${E_EFFNET[$NOISE]} GRID_MINILM=${E_MINILM[$NOISE]}
    source run_noise/sweep.sh
    mkdir -p "$FIGURES"
    for run in "$LOG_DIR"/*/; do
        [[ -f $run/energy_by_layer.png ]] || continue
        for ext in png pdf; do
            cp "$run/energy_by_layer.$ext" "$FIGURES/$NOISE-$(basename "$run").$ext"
        done
    done
done
echo "energy-by-layer figures: $FIGURES"
