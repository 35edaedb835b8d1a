#!/usr/bin/env bash
# Precision that moves during training, offline on the shipped Fashion-MNIST ResNet-20 (full 10,000-image test
# set, 5000 training images held out for validation):
#   1. Double Rounding: one model for 8, 6, 4 and 2 bits (weights and activations; the 4-bit loss weighs twice and
#      the 2-bit loss a quarter of the others') against a separately quantization-aware-trained model at each
#      bit-width; the stored integers' size;
#   2. a one-shot supernet (random per-layer bits) and the sub-networks its Hessian traces and an integer program
#      pick under average-bit budgets (Pareto front);
#   3. AdaptiveDPC (8 -> at least 4 weight bits from gradient statistics), CPT (3..8 bits, 8 cycles) and both,
#      against QAT at fixed 8 and fixed 4 weight bits (activations at 8).
# Plots: double_rounding/accuracy_by_precision, supernet/pareto, */bits_over_training.
#   run_quant/precision_schedules.sh        env: EPOCHS (3), LOG_DIR, PYTHON
source "$(dirname "$0")/../run_noise/common.sh"
EPOCHS="${EPOCHS:-3}"
PRECISION=("$PYTHON" main.py precision --model resnet20 --dataset fashion_mnist --epochs "$EPOCHS")
QAT=(--model resnet20 --dataset fashion_mnist --val_batch_size 1000 --train_batch_size 128 --noise_type none
     --weight_per_channel --qat --qat_epochs "$EPOCHS" --act_learning pact --qat_val_samples 5000)

accuracy() {  # the test accuracy of a main.py run folder (its one point)
    "$PYTHON" main.py query "$LOG_DIR/$1" accuracy
}

for b in 8 6 4 2; do
    run "resnet20-qat-w${b}a${b}" "${QAT[@]}" --weight_bits "$b" --act_bits "$b"
done
run resnet20-qat-w4a8 "${QAT[@]}" --weight_bits 4 --act_bits 8

precision() {  # precision NAME ARGS...: one precision run (skipped when its results exist)
    local name=$1
    shift
    [[ -f $LOG_DIR/$name/results.json ]] || "${PRECISION[@]}" --out "$LOG_DIR/$name" "$@"
}
precision double_rounding --method double_rounding --bits 8 6 4 2 --probabilities 1 1 2 0.25  # 4 bits twice, 2 bits a quarter
precision supernet --method supernet --bits 8 6 4 2 --budgets 3 4 5 6 7
precision adaptive_dpc --method adaptive_dpc --initial_bits 8 --min_bits 4 --delta 0.5
precision cpt --method cpt --cpt_low 3 --cpt_high 8 --cpt_cycles 8
precision adaptive_dpc_cpt --method adaptive_dpc+cpt --initial_bits 8 --min_bits 4 --delta 0.5 --cpt_low 3 \
    --cpt_high 8 --cpt_cycles 8

separate=()
for b in 8 6 4 2; do separate+=("$b=$(accuracy "resnet20-qat-w${b}a${b}")"); done
"$PYTHON" -m noisesim.reports.precision "$LOG_DIR/double_rounding" --separate "${separate[@]}"
"$PYTHON" -m noisesim.reports.precision "$LOG_DIR/supernet" --uniform "$LOG_DIR/double_rounding"
echo "fixed-bit QAT: W8A8 $(accuracy resnet20-qat-w8a8), W4A8 $(accuracy resnet20-qat-w4a8)"
