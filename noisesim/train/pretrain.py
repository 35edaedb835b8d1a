"""Pre-train a float network with the project's training loop (used for the shipped checkpoint).

    python -m noisesim.train.pretrain --model resnet20 --dataset fashion_mnist \\
        --epochs 15 --seed 0 --out noisesim/models/weights/resnet20_fashion_mnist.pt

SGD with Nesterov momentum 0.9, weight decay 5e-4, cosine learning rate from 0.1,
batch 128, random 2-pixel crops and horizontal flips; test accuracy is printed at the end.
"""
from __future__ import annotations

import argparse
import time

import torch

from noisesim.data.fashion_mnist import load_fashion_mnist
from noisesim.data.tensors import TensorBatches, random_crop_flip
from noisesim.io import save_checkpoint
from noisesim.models.cifar_resnet import resnet20
from noisesim.train.loop import TrainConfig, evaluate, train
from noisesim.train.tasks import Classification


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet20", choices=["resnet20"])
    p.add_argument("--dataset", default="fashion_mnist", choices=["fashion_mnist"])
    p.add_argument("--data_path", default=None, help="folder with the IDX files (default: Debian package)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="where to write the state_dict (.pt)")
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x_train, y_train = load_fashion_mnist("train", args.data_path)
    x_test, y_test = load_fashion_mnist("test", args.data_path)
    model = resnet20(num_classes=10, in_channels=1)
    batches = TensorBatches(x_train, y_train, args.batch_size, shuffle=True, drop_last=True,
                            transform=random_crop_flip(2, gen), generator=gen)
    cfg = TrainConfig(steps=args.epochs * len(batches), lr=args.lr, optimizer="sgd", momentum=0.9,
                      weight_decay=5e-4, schedule="cosine", desc="pretrain")
    start = time.time()
    model.train()
    train(model, list(model.parameters()), batches, Classification(), cfg)
    acc = evaluate(model, TensorBatches(x_test, y_test, 1000), Classification())
    save_checkpoint(args.out, {"state_dict": model.state_dict(), "test_accuracy": acc,
                               "epochs": args.epochs, "seed": args.seed, "model": args.model,
                               "dataset": args.dataset})
    print(f"test accuracy {acc:.4f} after {args.epochs} epochs, {time.time() - start:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
