"""Command-line interface of main.py: the parser, YAML defaults and validation.

Flag names and meanings follow the reference implementation of the papers. Every flag
that takes a list sweeps: the run covers the Cartesian product of all lists.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import yaml

from noisesim.config import MAX_BITS, MIN_BITS, NOISE_TYPES, OBSERVERS
from noisesim.data.registry import DATASETS
from noisesim.models.zoo import MODELS

ALLOCATIONS = ("uniform", "layer", "channel")
DEFAULT_STUDY = Path(__file__).parent / "configs" / "default_study.yaml"


class UsageError(Exception):
    """Bad command-line input: a one-line message naming the flag and what is allowed."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage dump
        raise UsageError(message)


def bits_arg(text: str) -> Optional[int]:
    if text.lower() in ("none", "off", "float"):
        return None
    try:
        bits = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a bit-width (an integer {MIN_BITS}-{MAX_BITS} or none)")
    if not MIN_BITS <= bits <= MAX_BITS:
        raise argparse.ArgumentTypeError(f"{bits} is outside {MIN_BITS}-{MAX_BITS} bits (or none for float)")
    return bits


def _at_least(text: str, cast: type, minimum: float, strict: bool):
    try:
        v = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if cast is int else 'a number'}")
    if v < minimum or (strict and v == minimum):
        raise argparse.ArgumentTypeError(f"{text} must be {'>' if strict else '>='} {minimum}")
    return v


def positive(text: str) -> float:
    return _at_least(text, float, 0, strict=True)


def positive_int(text: str) -> int:
    return _at_least(text, int, 1, strict=False)


def build_parser() -> Parser:
    p = Parser(prog="main.py", description="Simulate analog noise and quantization; train energy or bit "
               "allocations under a constrained loss; sweep, search iso-accuracy energies, plot.",
               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", help="YAML file of defaults (keys are flag names without dashes)")
    g = p.add_argument_group("model and data")
    g.add_argument("--model", default="resnet20", help=f"network: {', '.join(MODELS)}")
    g.add_argument("--dataset", default="fashion_mnist", help=f"data set: {', '.join(DATASETS)}")
    g.add_argument("--data_path", help="data folder (default for fashion_mnist: the Debian package's files)")
    g.add_argument("--checkpoint_path", help="float weights (.pt state_dict) to load instead of the default; for "
                   "bert_base a Hugging Face folder or hub id")
    g.add_argument("--train_subset", type=positive_int, help="use a seeded random subset of N training images")
    g.add_argument("--train_batch_size", type=positive_int, default=64, help="images per training/calibration batch")
    g.add_argument("--val_batch_size", type=positive_int, default=500, help="images per evaluation batch")
    g.add_argument("--eval_batches", type=positive_int, help="evaluate on a fixed random subset of this many "
                   "batches (default: the whole test set)")
    g.add_argument("--calibration_batches", type=positive_int, default=4, help="training batches used to calibrate")

    g = p.add_argument_group("quantization")
    g.add_argument("--weight_bits", type=bits_arg, nargs="+", default=[8], help="weight bits, 2-16 or none")
    g.add_argument("--act_bits", type=bits_arg, nargs="+", default=[8], help="activation (input) bits, 2-16 or none")
    g.add_argument("--weight_symmetric", action=argparse.BooleanOptionalAction, default=True,
                   help="symmetric weight quantization (zero point 0)")
    g.add_argument("--act_symmetric", action="store_true", help="symmetric activation quantization")
    g.add_argument("--weight_per_channel", action="store_true", help="one weight range per output channel")
    g.add_argument("--weight_observer", default="minmax", choices=OBSERVERS, help="how weight ranges are set")
    g.add_argument("--act_observer", default="minmax", choices=OBSERVERS, help="how activation ranges are calibrated")
    g.add_argument("--percentile", type=float, nargs="+", default=[99.99],
                   help="percentile (%%) of the percentile observer")
    g.add_argument("--ignore", nargs="*", choices=("first", "last"), default=[],
                   help="leave the first and/or last matmul layer in float")
    g.add_argument("--first_last_bits", type=bits_arg, help="weight and activation bits of the first and last layer")
    g.add_argument("--quant_gemm_only", action="store_true",
                   help="quantize only matmul inputs (the default; overrides --quantize_residual)")
    g.add_argument("--quantize_residual", action="store_true", help="also quantize residual adds and concatenations")
    g.add_argument("--fold_bn", action=argparse.BooleanOptionalAction, default=True, help="fold BN into convs")

    g = p.add_argument_group("analog noise")
    g.add_argument("--noise_type", nargs="+", default=["thermal"], choices=NOISE_TYPES, help="noise model(s)")
    g.add_argument("--e_mac", type=positive, nargs="+", default=[10.0],
                   help="energy per MAC in photons (uniform allocations; used when --target_emac is not given)")
    g.add_argument("--target_emac", type=positive, nargs="+",
                   help="average energies per MAC (photons) to allocate / train toward")
    g.add_argument("--noise_per_channel", action="store_true", help="one energy per output channel")
    g.add_argument("--quantize_energy", action="store_true", help="round energies to whole photons (STE)")
    g.add_argument("--record_snr", action="store_true",
                   help="record signal-to-noise ratios per layer and output channel (for the SNR plots)")
    g.add_argument("--override_with_noise_bits", action="store_true",
                   help="also evaluate every point with its noise replaced by the equivalent quantizer "
                        "(step sqrt(12)*sigma over the output range: the noise bits); adds noise_bits_accuracy")
    g.add_argument("--photon_energy", type=positive, default=0.128, help="photon energy in aJ (1550 nm: 0.128)")

    g = p.add_argument_group("training allocations (network weights stay frozen)")
    g.add_argument("--allocation", nargs="+", choices=ALLOCATIONS,
                   help="uniform, trained per-layer, trained per-channel energies (default: from --train_noise "
                        "and --noise_per_channel)")
    g.add_argument("--train_noise", action="store_true", help="train the log-energies")
    g.add_argument("--train_bitwidth", action="store_true", help="train log2 bit-widths")
    g.add_argument("--train_qminmax", action="store_true", help="train activation ranges (qmin/qmax)")
    g.add_argument("--constrained_loss", action="store_true",
                   help="penalty lambda*max(0, log E - log E_target) instead of lambda*log E")
    g.add_argument("--lambd", type=float, nargs="+", default=[1.0], help="penalty weight lambda")
    g.add_argument("--lr", type=positive, nargs="+", default=[0.05], help="learning rate")
    g.add_argument("--optimizer", default="adam", choices=("adam", "sgd"))
    g.add_argument("--train_batches", type=positive_int, default=100, help="optimiser steps")
    g.add_argument("--generated_labels", action=argparse.BooleanOptionalAction, default=False,
                   help="train on the float model's predictions instead of the data set labels")
    g.add_argument("--checkpoint", action="store_true",
                   help="keep the best evaluated step that meets the constraint")
    g.add_argument("--checkpoint_every", type=positive_int, default=25, help="steps between checkpoint evaluations")
    g.add_argument("--target_weight_bits", type=positive, nargs="+", help="average weight bits to train toward")
    g.add_argument("--target_act_bits", type=positive, nargs="+", help="average activation bits to train toward")
    g.add_argument("--round_bitwidth", action="store_true", help="round trained bits to integers (STE)")
    g.add_argument("--discrete_bitwidth", action="store_true", help="trained bits in {2, 4, 8}")
    g.add_argument("--stochastic_bitwidth", action="store_true", help="stochastic rounding of trained bits")
    g.add_argument("--per_channel_bitwidth", action="store_true", help="one weight bit-width per output channel")
    g.add_argument("--weight_bits_only", action="store_true", help="train weight bits only")
    g.add_argument("--max_act", action="store_true", help="activation bits of the largest feature map count")

    g = p.add_argument_group("evaluation and search")
    g.add_argument("--mc_repeats", type=positive_int, default=1, help="noise draws per evaluation (mean, 95%% CI)")
    g.add_argument("--binary_search", action="store_true", help="find the energy reaching --target_acc")
    g.add_argument("--target_acc", type=float, help="accuracy to reach: a fraction, or 'float-X' via --acc_drop")
    g.add_argument("--acc_drop", type=float, help="target accuracy = float accuracy minus this (fraction)")
    g.add_argument("--search_steps", type=positive_int, default=8, help="bisection steps")
    g.add_argument("--e_min", type=positive, default=0.01, help="lower end of the energy search (photons)")
    g.add_argument("--e_max", type=positive, default=1000.0, help="upper end of the energy search (photons)")

    g = p.add_argument_group("run")
    g.add_argument("--run_name", help="folder under --log_dir (default: <model>-<dataset>-<noise>)")
    g.add_argument("--log_dir", default="logs")
    g.add_argument("--overwrite", action="store_true", help="start the run folder over (the old one is kept "
                   "as <name>.old-<time>)")
    g.add_argument("--resume", action="store_true", help="skip sweep points already in results.csv")
    g.add_argument("--seed", type=int, nargs="+", default=[0])
    g.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    g.add_argument("--no_plot", action="store_true",
                   help="skip the plots (the quantization card is still written; redraw: python -m noisesim.plot)")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bars")
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse (YAML defaults first, then the command line) and validate; raises UsageError."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:  # no flags at all: the embedded offline study
        argv = ["--config", str(DEFAULT_STUDY)]
        print(f"no flags given: running the default study ({DEFAULT_STUDY})")
    parser = build_parser()
    config_path = _config_path(argv)
    if config_path:
        parser.set_defaults(**_load_yaml(parser, config_path))
    args = parser.parse_args(argv)
    validate(args)
    return args


def _config_path(argv: list[str]) -> Optional[str]:
    for i, a in enumerate(argv):
        if a == "--config":
            if i + 1 >= len(argv):
                raise UsageError("--config needs a YAML file")
            return argv[i + 1]
        if a.startswith("--config="):
            return a.split("=", 1)[1]
    return None


def _load_yaml(parser: Parser, path: str) -> dict:
    if not Path(path).is_file():
        raise UsageError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as e:
        raise UsageError(f"--config {path}: not valid YAML ({str(e).splitlines()[0]})")
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a mapping of flag names to values")
    known = {a.dest for a in parser._actions}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"--config {path}: unknown keys {', '.join(unknown)}")
    return data


def validate(args: argparse.Namespace) -> None:
    """Cross-flag checks; each failure names the flag and what is allowed."""
    if args.model not in MODELS:
        raise UsageError(f"--model {args.model}: unknown; choose from {', '.join(MODELS)}")
    if args.dataset not in DATASETS:
        raise UsageError(f"--dataset {args.dataset}: unknown; choose from {', '.join(DATASETS)}")
    if args.dataset not in MODELS[args.model].datasets:
        raise UsageError(f"--model {args.model} runs on {', '.join(MODELS[args.model].datasets)}, "
                         f"not --dataset {args.dataset}")
    if args.data_path and not Path(args.data_path).is_dir():
        raise UsageError(f"--data_path {args.data_path}: no such directory")
    if args.checkpoint_path and not Path(args.checkpoint_path).exists() and args.model != "bert_base":
        raise UsageError(f"--checkpoint_path {args.checkpoint_path}: no such file")
    for p in args.percentile:
        if not 50 < p <= 100:
            raise UsageError(f"--percentile {p}: must be in (50, 100]")
    for lam in args.lambd:
        if lam < 0:
            raise UsageError(f"--lambd {lam}: must be >= 0")
    if args.train_qminmax and args.act_observer == "percentile":
        raise UsageError("--train_qminmax learns the ranges the percentile --act_observer would set; "
                         "use minmax, ema, aciq or mse")
    if "thermal" in args.noise_type and (None in args.weight_bits or None in args.act_bits):
        raise UsageError("--noise_type thermal is set by the quantizer ranges: --weight_bits and --act_bits "
                         "must be 2-16, not none")
    if sum([args.round_bitwidth, args.discrete_bitwidth, args.stochastic_bitwidth]) > 1:
        raise UsageError("choose at most one of --round_bitwidth, --discrete_bitwidth, --stochastic_bitwidth")
    if args.train_noise and args.noise_type == ["none"]:
        raise UsageError("--train_noise needs --noise_type thermal, shot or weight")
    if args.train_bitwidth and not (args.target_weight_bits or args.target_act_bits):
        raise UsageError("--train_bitwidth needs --target_weight_bits and/or --target_act_bits")
    if args.train_bitwidth and None in args.weight_bits:
        raise UsageError("--train_bitwidth needs --weight_bits 2-16 to start from, not none")
    if args.binary_search and args.target_acc is None and args.acc_drop is None:
        raise UsageError("--binary_search needs --target_acc (a fraction, e.g. 0.9) or --acc_drop")
    if args.target_acc is not None and not 0 < args.target_acc <= 1:
        raise UsageError(f"--target_acc {args.target_acc}: must be a fraction in (0, 1]")
    if args.e_min >= args.e_max:
        raise UsageError(f"--e_min {args.e_min} must be below --e_max {args.e_max}")
    if args.device not in (None, "cpu", "cuda") and not str(args.device).startswith("cuda:"):
        raise UsageError(f"--device {args.device}: use cpu or cuda[:N]")
    if args.allocation is None:
        args.allocation = [("channel" if args.noise_per_channel else "layer") if args.train_noise else "uniform"]
    if any(a != "uniform" for a in args.allocation) and args.noise_type == ["none"]:
        raise UsageError("--allocation layer/channel trains energies: needs --noise_type thermal, shot or weight")
    if args.quant_gemm_only:
        args.quantize_residual = False
    if args.run_name is None:
        args.run_name = f"{args.model}-{args.dataset}-{'-'.join(args.noise_type)}"
    if "/" in args.run_name or args.run_name in ("", ".", ".."):
        raise UsageError(f"--run_name {args.run_name!r}: must be a plain folder name")
