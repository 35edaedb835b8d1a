#!/usr/bin/env bash
# Quantization-aware training for accelerator hardware, offline on Fashion-MNIST (the full 10,000-image test set):
#   1. ResNet-20 (the shipped float network): W4A4 and W4A2 after post-training quantization, then after QAT
#      (PACT activation clips, per-channel weights whose ranges follow them; W4A2 warm-started from W4A4);
#   2. VGG16 trained here in float (logs/qat/vgg16_fashion_mnist.pt), loaded partially into variants with an 8x8
#      chokepoint (W4A4) and a 16x16 one (W4A2), then QAT;
#   3. noise-aware training: ResNet-20 W8A8 with thermal noise on at QAT_EMAC photons/MAC while its weights train,
#      against the plain network, over the same grid of uniform energies (iso-accuracy energies in savings.md);
#   4. the integer export of the QAT W4A4 ResNet-20 and the chokepoint VGG16s, verified layer by layer and on the
#      whole test set, with the test-bench files of one array tile (export/hardware/).
#   run_quant/qat.sh [-- main.py flags]   env: EPOCHS (ResNet-20 QAT epochs, 3), VGG_EPOCHS (float 5, QAT 2),
#                                          QAT_EMAC (5), LOG_DIR, PYTHON
# Flags after -- reach every run (e.g. -- --eval_batches 2 scores a fixed subset of 2000 test images).
source "$(dirname "$0")/../run_noise/common.sh"
[[ ${1:-} == -- ]] && shift
if [[ $# -gt 0 && ${1:0:2} != -- ]]; then
    echo "qat.sh: unexpected argument '$1' (usage: qat.sh [-- main.py flags])" >&2
    exit 2
fi
EXTRA=("$@")
EPOCHS="${EPOCHS:-3}"
read -r VGG_FLOAT VGG_QAT <<< "${VGG_EPOCHS:-5 2}"
FMNIST_EVAL=(--model resnet20 --dataset fashion_mnist --val_batch_size 1000 --noise_type none --weight_per_channel
             "${EXTRA[@]}")
QAT=(--qat --act_learning pact --qat_val_samples 5000)

kept() {  # the trained network a QAT run kept
    "$PYTHON" main.py query "$LOG_DIR/$1" qat_network
}

# 1. ResNet-20
run resnet20-w4-ptq "${FMNIST_EVAL[@]}" --weight_bits 4 --act_bits 4 2
run resnet20-w4a4-qat "${FMNIST_EVAL[@]}" --weight_bits 4 --act_bits 4 "${QAT[@]}" --qat_epochs "$EPOCHS"
run resnet20-w4a2-qat "${FMNIST_EVAL[@]}" --weight_bits 4 --act_bits 2 "${QAT[@]}" --qat_epochs "$EPOCHS" \
    --qat_init "$(kept resnet20-w4a4-qat)"

# 2. VGG16 with a chokepoint (conv 8 narrowed to C -> C channels, C = the array size)
VGG="$LOG_DIR/vgg16_fashion_mnist.pt"
[[ -f $VGG ]] || "$PYTHON" main.py pretrain --model vgg16 --dataset fashion_mnist --epochs "$VGG_FLOAT" \
    --lr 0.05 --seed 0 --out "$VGG"
VGG_EVAL=(--model vgg16 --dataset fashion_mnist --val_batch_size 1000 --noise_type none --weight_per_channel
          --checkpoint_path "$VGG" "${EXTRA[@]}")
run vgg16-float "${VGG_EVAL[@]}" --weight_bits none --act_bits none
run vgg16-choke8-w4a4-qat "${VGG_EVAL[@]}" --model_options '{"chokepoint": 8, "choke_channels": 8}' \
    --partial_checkpoint --weight_bits 4 --act_bits 4 "${QAT[@]}" --qat_epochs "$VGG_QAT"
run vgg16-choke16-w4a2-qat "${VGG_EVAL[@]}" --model_options '{"chokepoint": 8, "choke_channels": 16}' \
    --partial_checkpoint --weight_bits 4 --act_bits 2 "${QAT[@]}" --qat_epochs "$VGG_QAT"

# 3. noise-aware training moves the iso-accuracy energy
NOISY=(--model resnet20 --dataset fashion_mnist --val_batch_size 1000 --noise_type thermal --weight_bits 8
       --act_bits 8 --target_emac 1 2 3 5 10 20 50 --mc_repeats 2 --acc_drop 0.01 "${EXTRA[@]}")
run resnet20-thermal-plain "${NOISY[@]}"
run resnet20-thermal-noise-aware "${NOISY[@]}" --qat --qat_emac "${QAT_EMAC:-5}" --qat_epochs 1 \
    --qat_val_samples 5000
compare resnet20-thermal-noise-aware-vs-plain resnet20-thermal-plain resnet20-thermal-noise-aware

# 4. integers for the hardware
"$PYTHON" main.py export "$LOG_DIR/resnet20-w4a4-qat" --layer layer2.0.conv2 --array 8 --itile 1 --otile 1 \
    --integer_accuracy
"$PYTHON" main.py export "$LOG_DIR/vgg16-choke8-w4a4-qat" --layer features.27 --array 8 --integer_accuracy
"$PYTHON" main.py export "$LOG_DIR/vgg16-choke16-w4a2-qat" --layer features.27 --array 16 --integer_accuracy
