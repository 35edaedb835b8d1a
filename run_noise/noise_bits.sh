#!/usr/bin/env bash
# Noise bits: every point is evaluated twice, with its analog noise and with the equivalent uniform quantizer
# (step sqrt(12)*sigma over the layer's output range, --noise_as_quantizer), for thermal, shot and weight
# noise; per-layer ENOB of uniform and trained (dynamic) allocations in noise_bits_by_layer.png.
#   run_noise/noise_bits.sh [IMAGENET_DIR]
source "$(dirname "$0")/common.sh"
FLAGS=(--noise_as_quantizer --record_snr --constrained_loss --lambd 5 --lr 0.05)
declare -A E_EFFNET=([thermal]="300 1000" [shot]="300 1000" [weight]="3000 10000")
declare -A E_MINILM=([thermal]="1e5 1e6" [shot]="10 100" [weight]="1e3 1e4")
declare -A E_IMAGENET=([thermal]="50 200" [shot]="5 20" [weight]="10 50")
for noise in thermal shot weight; do
    if [[ -n $DATA ]]; then
        imagenet "-$noise" "${FLAGS[@]}" --noise_type $noise --allocation uniform trained \
            --target_emac ${E_IMAGENET[$noise]} --train_batches 300 --eval_batches 20
    else
        offline FMNIST "-$noise" "${FLAGS[@]}" --noise_type $noise --allocation uniform trained --target_emac 10 30 \
            --train_batches 60
        offline EFFNET "-$noise" "${FLAGS[@]}" --noise_type $noise --allocation uniform --target_emac ${E_EFFNET[$noise]}
        offline MINILM "-$noise" "${FLAGS[@]}" --noise_type $noise --allocation uniform --target_emac ${E_MINILM[$noise]}
    fi
done
