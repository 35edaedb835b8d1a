# Sourced by run_quant/*.sh: a quantization study run once per setting of one confounder, then compared.
#
#   setting NAME FLAGS...   run the study with FLAGS for every model (offline presets or ImageNet models),
#                           run folders logs/<script>/<model>-<data>-NAME
#   compare_settings NAME...  plots (accuracy vs average bits), a card with one confounder column per setting
#
# STUDY_FLAGS (set by the script) is the study itself; the default is post-training quantization over a grid of
# weight and activation bit-widths without noise. PRESETS lists the offline models (default: all three; the environment's
# PRESETS, e.g. "FMNIST EFFNET", wins).
source "$(dirname "${BASH_SOURCE[0]}")/../run_noise/common.sh"
STUDY_FLAGS=(--noise_type none --weight_bits 3 4 8 --act_bits 4 8)
read -r -a PRESETS <<< "${PRESETS:-${OFFLINE[*]}}"

setting() {
    local name=$1 preset
    shift
    if [[ -n $DATA ]]; then
        imagenet "-$name" "${STUDY_FLAGS[@]}" "$@"
    else
        for preset in "${PRESETS[@]}"; do
            offline "$preset" "-$name" "${STUDY_FLAGS[@]}" "$@"
        done
    fi
}

compare_settings() {
    local base runs name
    if [[ -n $DATA ]]; then
        bases=("${IMAGENET_MODELS[@]}")
    else
        bases=()
        for preset in "${PRESETS[@]}"; do bases+=("${RUN_NAME[$preset]}"); done
    fi
    for base in "${bases[@]}"; do
        runs=()
        for name in "$@"; do runs+=("$base-$name"); done
        compare "$base-compare" "${runs[@]}"
    done
}
