"""Pre-train a float network with the project's training loop (how the shipped weights were made).

    python -m noisesim.train.pretrain --model resnet20 --dataset fashion_mnist \\
        --epochs 20 --seed 0 --out noisesim/models/weights/resnet20_fashion_mnist.pt
    python -m noisesim.train.pretrain --model dlrm --dataset criteo_synthetic \\
        --epochs 2 --optimizer adam --lr 3e-3 --out dlrm.pt

Image models: SGD with Nesterov momentum 0.9, weight decay 5e-4, cosine learning rate,
batch 128, random 2-pixel crops and horizontal flips. The test metric is printed at the end.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch

from noisesim.data.registry import build_data
from noisesim.data.tensors import random_crop_flip
from noisesim.io import save_checkpoint
from noisesim.models.zoo import MODELS
from noisesim.registry import DATASETS
from noisesim.train.loop import TrainConfig, evaluate, train
from noisesim.usage import DefaultsHelp, Parser, UsageError, fail


PROG = "python -m noisesim.train.pretrain"


def build_parser(prog: str = PROG) -> Parser:
    p = Parser(prog=prog, description=__doc__, formatter_class=DefaultsHelp)
    p.add_argument("--model", default="resnet20", help=f"network to train from scratch: {', '.join(MODELS)}, or "
                   "an import path package.module:factory (docs/plugins.md)")
    p.add_argument("--dataset", default="fashion_mnist", help=f"training and test data: {', '.join(DATASETS)}, or "
                   "an import path package.module:loader")
    p.add_argument("--data_path", default=None, help="data folder (none: the loader's default)")
    p.add_argument("--epochs", type=int, default=20, help="passes over the training set")
    p.add_argument("--batch_size", type=int, default=128, help="training batch size")
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"), help="sgd: Nesterov momentum 0.9")
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate (cosine schedule)")
    p.add_argument("--weight_decay", type=float, default=5e-4, help="L2 weight decay")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights, the shuffling and the augmentation")
    p.add_argument("--model_options", default=None,
                   help='architecture options as a JSON object, e.g. \'{"chokepoint": 8, "choke_channels": 8}\' '
                   "for vgg16")
    p.add_argument("--out", required=True, help="where to write the state_dict (.pt)")
    return p


def _options(text: Optional[str]) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"--model_options {text}: not JSON ({e.msg})") from None
    if not isinstance(options, dict):
        raise UsageError(f"--model_options {text}: give a JSON object of option names and values")
    return options


def parse(argv=None, prog: str = PROG):
    """The command's flags, checked (``model_options`` parsed into a dict); a UsageError says what is wrong."""
    args = build_parser(prog).parse_args(argv)
    args.options = _options(args.model_options)
    for flag, registry in (("model", MODELS), ("dataset", DATASETS)):
        problem = registry.problem(getattr(args, flag))
        if problem:
            raise UsageError(f"--{flag} {getattr(args, flag)}: {problem}")
    for k in ("epochs", "batch_size"):
        if getattr(args, k) < 1:
            raise UsageError(f"--{k} {getattr(args, k)}: must be >= 1")
    if not args.lr > 0:
        raise UsageError(f"--lr {args.lr}: must be > 0")
    if not args.weight_decay >= 0:
        raise UsageError(f"--weight_decay {args.weight_decay}: must be >= 0")
    if Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: a folder; give the file to write")
    return args


def main(argv=None, prog: str = PROG) -> int:
    try:
        args = parse(argv, prog)
    except UsageError as e:
        return fail(prog, e)
    torch.manual_seed(args.seed)
    try:
        data = build_data(args.dataset, args.data_path, args.batch_size, 1000, seed=args.seed)
        model = MODELS.get(args.model).build(num_classes=data.num_classes, in_channels=data.in_channels,
                                             **args.options)
    except TypeError as e:
        return fail(prog, f"--model_options {args.model_options}: {args.model} does not take them ({e})")
    except (ValueError, FileNotFoundError) as e:
        return fail(prog, e)
    if args.dataset in ("fashion_mnist", "cifar10"):
        data.train.transform = random_crop_flip(2, torch.Generator().manual_seed(args.seed))
    cfg = TrainConfig(steps=args.epochs * len(data.train), lr=args.lr, optimizer=args.optimizer, momentum=0.9,
                      weight_decay=args.weight_decay, schedule="cosine", desc="pretrain")
    start = time.time()
    model.train()
    train(model, list(model.parameters()), data.train, data.task, cfg)
    metric = evaluate(model, data.val, data.task)
    save_checkpoint(args.out, {"state_dict": model.state_dict(), "test_" + data.task.name: metric,
                               "epochs": args.epochs, "seed": args.seed, "model": args.model,
                               "dataset": args.dataset, "model_options": args.options or None})
    print(f"test {data.task.name} {metric:.4f} after {args.epochs} epochs, {time.time() - start:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
