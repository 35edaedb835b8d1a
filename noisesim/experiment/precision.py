"""``python -m noisesim.experiment.precision``: train with precision that moves — AdaptiveDPC, CPT, both, or Double
Rounding (one multi-precision model, or a supernet searched under bit budgets) — on a zoo model, and write
the results and plots into one folder.

    python -m noisesim.experiment.precision --model resnet20 --dataset fashion_mnist --epochs 3 --method adaptive_dpc \\
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

import dataclasses
import json
import sys
import time
from argparse import RawDescriptionHelpFormatter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd
import torch
from torch import nn

import noisesim
from noisesim.config import ConfigError, bits_problem
from noisesim.experiment.cli import add_flag
from noisesim.data.registry import build_data
from noisesim.data.tensors import hold_out
from noisesim.io import atomic_write
from noisesim.models.zoo import build_model
from noisesim.registry import DATASETS, MODELS
from noisesim.reports.precision import draw_precision, with_intervals
from noisesim.precision.adaptive import (AdaptiveDPC, AdaptiveDPCSettings, CPTSettings, CyclicPrecision,
                                         train_with_adaptive_dpc, validate)
from noisesim.precision.double_rounding import (DoubleRoundingConfig, DoubleRoundingSettings, MultiPrecision,
                                                train_double_rounding)
from noisesim.precision.subnets import SupernetSettings, search_subnets
from noisesim.settings import at_least_one, check_field, coerce, include_settings, positive, registered, setting
from noisesim.train.loop import evaluate
from noisesim.train.qat import qat_parameters
from noisesim.usage import Parser, UsageError, fail

METHODS = ("adaptive_dpc", "cpt", "adaptive_dpc+cpt", "double_rounding", "supernet")
PROG = "python -m noisesim.experiment.precision"
C, P = "command", "precision schedules"


@dataclass(frozen=True)
@include_settings(AdaptiveDPCSettings, CPTSettings, DoubleRoundingSettings, SupernetSettings)
class PrecisionConfig:
    """The precision command's settings: its own and each schedule's (their flags are generated from them)."""

    model: str = setting("resnet20", "network (resnet20: the shipped Fashion-MNIST weights)", C,
                         choices=registered(MODELS))
    dataset: str = setting("fashion_mnist", "data set", C, choices=registered(DATASETS))
    data_path: Optional[str] = setting(None, "data folder (default: the loader's)", C, parse=str)
    method: str = setting("adaptive_dpc", "precision schedule", C, choices=lambda: METHODS)
    epochs: float = setting(3.0, "training epochs", C, unit="epochs", check=positive)
    lr: float = setting(1e-3, "SGD learning rate, Nesterov momentum 0.9, cosine schedule", C, check=positive)
    batch_size: int = setting(128, "samples per training batch", C, unit="samples", check=at_least_one)
    act_bits: int = setting(8, "activation bits for AdaptiveDPC / CPT", P, unit="bits", check=bits_problem)
    val_samples: int = setting(5000, "training images held out (they pick the epochs)", C, unit="samples",
                               check=at_least_one)
    seed: int = setting(0, "random seed", C)
    out: Optional[str] = setting(None, "output folder (default: none; give one)", C, parse=str)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            check_field(f, getattr(self, f.name))
        if self.out is None:
            raise ConfigError("--out: give the output folder", "out")
        for owner in self.owners:  # each schedule checks its own combinations
            owner(**{f.name: getattr(self, f.name) for f in dataclasses.fields(owner)})


def build_parser(prog: str = PROG) -> Parser:
    p = Parser(prog=prog, description=__doc__, formatter_class=RawDescriptionHelpFormatter)
    groups = {g: p.add_argument_group(g) for g in (C, P)}
    for f in dataclasses.fields(PrecisionConfig):
        add_flag(groups[f.metadata["group"]], f)
    return p


def parse(argv: Optional[Sequence[str]] = None, prog: str = PROG) -> PrecisionConfig:
    """The command's flags, checked; a UsageError says what is wrong (nothing is loaded or written)."""
    values = vars(build_parser(prog).parse_args(argv))
    fields = {f.name: f for f in dataclasses.fields(PrecisionConfig)}
    try:
        return PrecisionConfig(**{k: coerce(fields[k], v) for k, v in values.items()})
    except ConfigError as e:
        raise UsageError(str(e)) from None


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
    record = {"command": command, "settings": dataclasses.asdict(args),
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
