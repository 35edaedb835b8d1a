#!/usr/bin/env bash
# The classic per-layer activation-bit study, greedy 4 -> 2 bits: every layer's input at 4 bits; each layer alone at
# 2 bits, its drop measured on held-out training batches; the layers sorted least sensitive first and lowered one by
# one, each kept (ACCEPT) while the drop against the all-4-bit network stays within EPSILON (1 point), else put back
# (REJECT). Each run folder holds the log (allocations/<point>.log), the sensitivity table with the decisions, the
# final bits and test accuracy against the all-4-bit network with a paired 95% interval (greedy.md), and the bar
# chart of the drops, lowered layers marked (greedy_drops.png).
#   1. the shipped Fashion-MNIST ResNet-20, W4A4: after post-training quantization, and after QAT (PACT clips);
#   2. the Fashion-MNIST VGG16 that run_quant/qat.sh trains (logs/qat/vgg16_fashion_mnist.pt), the same two;
#   3. with CIFAR10_DIR (a folder with cifar-10-batches-py/): a VGG16 trained here in float on CIFAR-10, W4A4 QAT.
#   run_quant/greedy_act_bits.sh     env: EPSILON (0.01), EPOCHS (QAT epochs, 1), CIFAR_EPOCHS (float VGG16, 30),
#                                    CIFAR10_DIR, LOG_DIR, PYTHON
source "$(dirname "$0")/../run_noise/common.sh"
GREEDY=(--noise_type none --weight_per_channel --weight_bits 4 --act_bits 4 --quantity act_bits --target_act_bits 2
        --allocation greedy --greedy_bits 4 2 --greedy_epsilon "${EPSILON:-0.01}" --sensitivity_batches 16
        --val_batch_size 1000)
QAT=(--qat --act_learning pact --qat_val_samples 5000 --qat_epochs "${EPOCHS:-1}")

# 1. ResNet-20
run resnet20-w4a4-ptq --model resnet20 --dataset fashion_mnist "${GREEDY[@]}"
run resnet20-w4a4-qat --model resnet20 --dataset fashion_mnist "${GREEDY[@]}" "${QAT[@]}"

# 2. VGG16 (trained by run_quant/qat.sh)
VGG="$LOG_ROOT/qat/vgg16_fashion_mnist.pt"
if [[ -f $VGG ]]; then
    run vgg16-w4a4-ptq --model vgg16 --dataset fashion_mnist --checkpoint_path "$VGG" "${GREEDY[@]}"
    run vgg16-w4a4-qat --model vgg16 --dataset fashion_mnist --checkpoint_path "$VGG" "${GREEDY[@]}" "${QAT[@]}"
else
    echo "$STUDY: no $VGG: run run_quant/qat.sh first for the VGG16 rows"
fi

# 3. CIFAR-10
if [[ -n ${CIFAR10_DIR:-} ]]; then
    CIFAR_VGG="$LOG_DIR/vgg16_cifar10.pt"
    [[ -f $CIFAR_VGG ]] || "$PYTHON" main.py pretrain --model vgg16 --dataset cifar10 --data_path "$CIFAR10_DIR" \
        --epochs "${CIFAR_EPOCHS:-30}" --lr 0.05 --seed 0 --out "$CIFAR_VGG"
    run vgg16-cifar10-w4a4-qat --model vgg16 --dataset cifar10 --data_path "$CIFAR10_DIR" \
        --checkpoint_path "$CIFAR_VGG" "${GREEDY[@]}" "${QAT[@]}"
fi
