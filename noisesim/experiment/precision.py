"""``python -m noisesim.experiment.precision``: train with precision that moves — AdaptiveDPC, CPT, both, or Double
Rounding (one multi-precision model, or a supernet searched under bit budgets) — on a zoo model, and write
the results and plots into one folder.

    python -m noisesim.experiment.precision --arch resnet20 --dataset fashion_mnist --epochs 3 --method adaptive_dpc \\
        --initial_bits 8 --min_bits 4 --delta 0.5 --out logs/precision/adaptive
    python -m noisesim.experiment.precision --method cpt --cpt_low 3 --cpt_high 8 --cpt_cycles 8 --out ...
    python -m noisesim.experiment.precision --method double_rounding --bits 8 6 4 2 --out ...
    python -m noisesim.experiment.precision --method supernet --bits 8 6 4 2 --budgets 3 4 5 6 --out ...

Training uses the training set minus ``--val_samples`` held-out images (progress is scored on those),
and reports on the full test set at the end. The folder gets ``results.json`` (the command, the
settings, per-epoch records with per-layer bits, test accuracies), ``results.csv`` (one row per
evaluated precision or sub-network) and plots: ``bits_over_training.png`` (AdaptiveDPC: each layer's
bits per epoch; CPT: the schedule), ``accuracy_by_precision.png`` (Double Rounding) and
``pareto.png`` (supernet sub-networks). Double Rounding also writes ``integers.pt`` (stored integers
only) and prints its size.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd
import torch
from torch import nn

import noisesim
from noisesim.config import bits_problem
from noisesim.data.registry import build_data
from noisesim.data.tensors import hold_out
from noisesim.io import atomic_write
from noisesim.models.zoo import build_model
from noisesim.registry import DATASETS, MODELS
from noisesim.reports.precision import draw_precision, with_intervals
from noisesim.precision.adaptive import AdaptiveDPC, CyclicPrecision, train_with_adaptive_dpc, validate
from noisesim.precision.subnets import search_subnets
from noisesim.precision.double_rounding import DoubleRoundingConfig, MultiPrecision, train_double_rounding
from noisesim.train.loop import evaluate
from noisesim.train.qat import qat_parameters
from noisesim.usage import Parser, UsageError, fail

METHODS = ("adaptive_dpc", "cpt", "adaptive_dpc+cpt", "double_rounding", "supernet")


PROG = "python -m noisesim.experiment.precision"


def build_parser(prog: str = PROG) -> Parser:
    p = Parser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--arch", "--model", dest="model", default="resnet20", choices=MODELS.names(),
                   help="network (default: resnet20, the shipped Fashion-MNIST weights)")
    p.add_argument("--dataset", default="fashion_mnist", choices=DATASETS.names(), help="(default: fashion_mnist)")
    p.add_argument("--data_path", default=None, help="data folder (default: the loader's)")
    p.add_argument("--method", default="adaptive_dpc", choices=METHODS, help="(default: adaptive_dpc)")
    p.add_argument("--epochs", type=float, default=3, help="training epochs (default: 3)")
    p.add_argument("--lr", type=float, default=1e-3, help="SGD learning rate, Nesterov momentum 0.9, cosine "
                   "schedule (default: 0.001)")
    p.add_argument("--batch_size", type=int, default=128, help="(default: 128)")
    p.add_argument("--act_bits", type=int, default=8, help="activation bits for AdaptiveDPC / CPT (default: 8)")
    p.add_argument("--initial_bits", type=int, default=8, help="AdaptiveDPC: starting weight bits (default: 8)")
    p.add_argument("--min_bits", type=int, default=4, help="AdaptiveDPC: lowest weight bits (default: 4)")
    p.add_argument("--delta", type=float, default=0.5, help="AdaptiveDPC: bits per halving of a layer's gradient "
                   "statistic below the most active layer's (default: 0.5)")
    p.add_argument("--cosine_threshold", type=float, default=0.95, help="AdaptiveDPC guard (default: 0.95)")
    p.add_argument("--cpt_low", type=int, default=3, help="CPT lowest bits (default: 3)")
    p.add_argument("--cpt_high", type=int, default=8, help="CPT highest bits (default: 8)")
    p.add_argument("--cpt_cycles", type=int, default=8, help="CPT cycles over the whole training (default: 8)")
    p.add_argument("--bits", type=int, nargs="+", default=[8, 6, 4, 2], help="Double Rounding precisions "
                   "(default: 8 6 4 2)")
    p.add_argument("--probabilities", type=float, nargs="+", default=None,
                   help="Double Rounding: each of --bits' weight in the joint loss, or with --no-joint its "
                   "probability of being drawn per step (default: equal)")
    p.add_argument("--joint", action=argparse.BooleanOptionalAction, default=True,
                   help="Double Rounding: train every precision at every step (default), or draw one per step")
    p.add_argument("--distill", action=argparse.BooleanOptionalAction, default=True,
                   help="Double Rounding, joint: lower precisions also learn the top precision's predictions "
                   "(default: on)")
    p.add_argument("--budgets", type=float, nargs="+", default=[3, 4, 5, 6, 7],
                   help="supernet: average weight-bit budgets to search (default: 3 4 5 6 7)")
    p.add_argument("--val_samples", type=int, default=5000, help="training images held out (default: 5000)")
    p.add_argument("--seed", type=int, default=0, help="(default: 0)")
    p.add_argument("--out", required=True, help="output folder")
    return p


def _problems(args) -> list[str]:
    """What is wrong with the flags (checked before anything is loaded or written)."""
    problems = [f"--{k} {getattr(args, k)}: must be > 0" for k in ("epochs", "lr") if not getattr(args, k) > 0]
    problems += [f"--{k} {getattr(args, k)}: must be >= 1" for k in ("batch_size", "cpt_cycles")
                 if getattr(args, k) < 1]
    for k in ("act_bits", "initial_bits", "min_bits", "cpt_low", "cpt_high"):
        problems += [f"--{k} {getattr(args, k)}: {why}" for why in [bits_problem(getattr(args, k))] if why]
    problems += [f"--bits {b}: {why}" for b in args.bits for why in [bits_problem(b)] if why]
    if args.min_bits > args.initial_bits:
        problems.append(f"--min_bits {args.min_bits} is above --initial_bits {args.initial_bits}")
    if args.cpt_low > args.cpt_high:
        problems.append(f"--cpt_low {args.cpt_low} is above --cpt_high {args.cpt_high}")
    if len(set(args.bits)) != len(args.bits):
        problems.append(f"--bits {' '.join(map(str, args.bits))}: each precision once")
    if args.probabilities is not None and len(args.probabilities) != len(args.bits):
        problems.append(f"--probabilities: give one per --bits value ({len(args.bits)})")
    if args.probabilities is not None and (min(args.probabilities) < 0 or sum(args.probabilities) <= 0):
        problems.append("--probabilities: weights must be >= 0 and not all 0")
    if not args.budgets or min(args.budgets) <= 0:
        problems.append("--budgets: average bit budgets must be > 0")
    if args.val_samples < 1:
        problems.append(f"--val_samples {args.val_samples}: must be >= 1 (the held-out images that pick epochs)")
    return problems


def parse(argv: Optional[Sequence[str]] = None, prog: str = PROG):
    """The command's flags, checked; a UsageError says what is wrong (nothing is loaded or written)."""
    args = build_parser(prog).parse_args(argv)
    problems = _problems(args)
    if problems:
        raise UsageError(problems[0])
    return args


def main(argv: Optional[Sequence[str]] = None, prog: str = PROG) -> int:
    try:
        args = parse(argv, prog)
    except UsageError as e:
        return fail(prog, e)
    try:
        return _run(args, [*prog.split(), *(sys.argv[1:] if argv is None else argv)])
    except (ValueError, FileNotFoundError) as e:
        return fail(prog, e)


def _run(args, command: list[str]) -> int:
    torch.manual_seed(args.seed)
    out = Path(args.out)  # created by its first file, once training is done
    spec = MODELS.get(args.model)
    data = build_data(args.dataset, args.data_path, args.batch_size, 1000, seed=args.seed, input_size=spec.input_size,
                      normalization=spec.normalization)
    model = build_model(args.model, args.dataset, data.num_classes, data.in_channels)
    try:
        train_batches, val = hold_out(data.train, args.val_samples, args.seed)
    except ValueError as e:
        raise ValueError(f"--val_samples {args.val_samples}: {e}") from None
    multi = args.method in ("double_rounding", "supernet")
    cfg = noisesim.SimConfig(weight_bits=max(args.bits) if multi else args.initial_bits,
                             act_bits=max(args.bits) if multi else args.act_bits, weight_per_channel=True,
                             act_learning="pact")
    sim = noisesim.prepare(model, cfg)
    noisesim.calibrate(sim, train_batches, max_batches=4)
    start = time.time()
    record = {"command": command, "settings": vars(args),
              "float_test_accuracy": evaluate(model, data.val, data.task),
              "test_examples": len(getattr(data.val, "targets", ())) or None}
    rows = []
    if multi:
        mp = MultiPrecision(sim, args.bits)
        result = train_double_rounding(mp, train_batches, val, data.task, DoubleRoundingConfig(
            epochs=args.epochs, lr=args.lr, probabilities=tuple(args.probabilities) if args.probabilities else None,
            joint=args.joint, distill=args.distill, mixed=args.method == "supernet", seed=args.seed))
        record.update(drawn=result["drawn"], val_accuracy=result.get("val"))
        if args.method == "double_rounding":
            for b in mp.bits:
                mp.set_bit_width(b)
                rows.append({"bits": b, "average_bits": float(b), "test_accuracy": evaluate(sim, data.val, data.task)})
            record["integers_bytes"] = mp.save_integers(out / "integers.pt")
            record["float32_weight_bytes"] = sum(m.weight.numel() * 4 for m in mp.layers.values())
        else:
            for r in search_subnets(mp, train_batches, data.val, data.task, args.budgets):
                rows.append({"budget": r["budget"], "average_bits": r["average_bits"], "test_accuracy": r["accuracy"],
                             "bits": json.dumps(r["bits"])})
    else:
        dpc = AdaptiveDPC(sim, args.initial_bits, args.min_bits, args.delta,
                          cosine_threshold=args.cosine_threshold) if "adaptive" in args.method else None
        cpt = CyclicPrecision(args.cpt_low, args.cpt_high, args.cpt_cycles) if "cpt" in args.method else None
        params = qat_parameters(sim)
        opt = torch.optim.SGD(params, lr=args.lr, momentum=0.9, nesterov=True, weight_decay=1e-4)
        total = int(round(args.epochs)) * len(train_batches)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
        history = train_with_adaptive_dpc(sim, train_batches, val, nn.CrossEntropyLoss(), opt, sched, dpc=dpc,
                                          epochs=int(round(args.epochs)), cpt=cpt)
        record["epochs"] = history
        if cpt is not None:
            record["cpt_schedule"] = cpt.schedule(total)
        test = validate(sim, data.val, nn.CrossEntropyLoss())
        rows.append({"average_bits": dpc.average_bits() if dpc else float(args.cpt_high),
                     "test_accuracy": test["accuracy"]})
    record["seconds"] = round(time.time() - start, 1)
    rows = with_intervals(pd.DataFrame(rows), record["test_examples"])
    record["results"] = rows.to_dict("records")
    atomic_write(out / "results.json", lambda f: f.write(json.dumps(record, indent=1, default=str)))
    atomic_write(out / "results.csv", lambda f: rows.to_csv(f, index=False))
    draw_precision(out)
    print(rows.drop(columns=["bits"] if args.method == "supernet" else []).to_string(index=False))
    print(f"{args.method}: {record['seconds']:.0f} s; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
