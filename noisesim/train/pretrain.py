"""Pre-train a float network with the project's training loop (how the shipped weights were made).

    python -m noisesim.train.pretrain --model resnet20 --dataset fashion_mnist \\
        --epochs 20 --seed 0 --out noisesim/models/weights/resnet20_fashion_mnist.pt
    python -m noisesim.train.pretrain --model dlrm --dataset criteo_synthetic \\
        --epochs 2 --optimizer adam --lr 3e-3 --out dlrm.pt

Image models: SGD with Nesterov momentum 0.9, weight decay 5e-4, cosine learning rate,
batch 128, random 2-pixel crops and horizontal flips. The test metric is printed at the end.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from noisesim.data.registry import build_data
from noisesim.data.tensors import random_crop_flip
from noisesim.io import save_checkpoint
from noisesim.models.zoo import MODELS
from noisesim.registry import DATASETS
from noisesim.train.loop import TrainConfig, evaluate, train


def main(argv=None, prog: str = "python -m noisesim.train.pretrain") -> None:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet20", choices=list(MODELS))
    p.add_argument("--dataset", default="fashion_mnist", choices=list(DATASETS))
    p.add_argument("--data_path", default=None, help="data folder (default: the loader's default)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"))
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight_decay", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model_options", type=json.loads, default=None,
                   help='architecture options as JSON, e.g. \'{"chokepoint": 8, "choke_channels": 8}\' for vgg16')
    p.add_argument("--out", required=True, help="where to write the state_dict (.pt)")
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    data = build_data(args.dataset, args.data_path, args.batch_size, 1000, seed=args.seed)
    if args.dataset in ("fashion_mnist", "cifar10"):
        data.train.transform = random_crop_flip(2, torch.Generator().manual_seed(args.seed))
    model = MODELS.get(args.model).build(num_classes=data.num_classes, in_channels=data.in_channels,
                                         **(args.model_options or {}))
    cfg = TrainConfig(steps=args.epochs * len(data.train), lr=args.lr, optimizer=args.optimizer, momentum=0.9,
                      weight_decay=args.weight_decay, schedule="cosine", desc="pretrain")
    start = time.time()
    model.train()
    train(model, list(model.parameters()), data.train, data.task, cfg)
    metric = evaluate(model, data.val, data.task)
    save_checkpoint(args.out, {"state_dict": model.state_dict(), "test_" + data.task.name: metric,
                               "epochs": args.epochs, "seed": args.seed, "model": args.model,
                               "dataset": args.dataset, "model_options": args.model_options})
    print(f"test {data.task.name} {metric:.4f} after {args.epochs} epochs, {time.time() - start:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
