#!/usr/bin/env bash
# Baseline checkpoint: the same architecture from two sources quantized alike. ImageNet: torchvision's ResNet50
# vs pytorchcv's (3.86 vs 4.09 GMAC: v1 vs v1.5 strides). Offline: the shipped Fashion-MNIST ResNet-20 vs a second
# ResNet-20 this script trains (1 epoch, seed 1); EfficientNet-Lite0 and MiniLM have one offline baseline each.
#   run_quant/ptcv.sh [IMAGENET_DIR]
source "$(dirname "$0")/../run_noise/common.sh"
DATA="${1:-}"
PTQ=(--noise_type none --weight_bits 3 4 8 --act_bits 4 8)
if [[ -n $DATA ]]; then
    run resnet50-torchvision --model resnet50 --dataset imagenet --data_path "$DATA" --val_batch_size 100 "${PTQ[@]}"
    run resnet50-pytorchcv --model resnet50_ptcv --dataset imagenet --data_path "$DATA" --val_batch_size 100 \
        "${PTQ[@]}"
    compare resnet50-compare resnet50-torchvision resnet50-pytorchcv
else
    second="$LOG_DIR/resnet20_fashion_mnist_seed1.pt"
    [[ -f $second ]] || "$PYTHON" main.py pretrain --model resnet20 --dataset fashion_mnist --epochs 1 \
        --seed 1 --out "$second"
    FMNIST=(--model resnet20 --dataset fashion_mnist --val_batch_size 1000)  # noisesim/configs/presets/fmnist.yaml
    run resnet20-fashion_mnist-shipped "${FMNIST[@]}" "${PTQ[@]}"
    run resnet20-fashion_mnist-seed1_1epoch "${FMNIST[@]}" "${PTQ[@]}" --checkpoint_path "$second"
    compare resnet20-fashion_mnist-compare resnet20-fashion_mnist-shipped resnet20-fashion_mnist-seed1_1epoch
fi
