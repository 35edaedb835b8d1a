"""``noisesim export RUN_DIR`` (= ``python main.py export``): export a run's quantized network as integers, verify
them, and write hardware test-bench files for one convolution tile (the library: ``noisesim.export``).

    python main.py export logs/<run> --out export/                     # integers.npz, manifest.json, checks
    python main.py export logs/<run> --layer layer1.0.conv1 --array 8 --itile 0 --otile 0 --psum_bits 16
    python main.py export logs/<run> --integer_accuracy                # whole network in integers
    python main.py export logs/<run> --psum_bits 24 --psum_overflow saturate
    python main.py export logs/<run> --onnx model.onnx                 # QDQ ONNX, checked by ONNX Runtime

The network is the run's point ``--point`` (default: its first), prepared and calibrated as the run did
(with --qat runs, the trained network kept in the run folder). Every exported layer's output is recovered
from its integers on one evaluation batch; the command prints the per-layer recovery error and exits 1
when one exceeds ``--tolerance`` (relative to the layer's output range), 2 on bad input (nothing written).
A psum that does not fit ``--psum_bits`` stops the export (``--psum_overflow error``, the default) or is
written wrapped (two's complement) or saturated; either way ``checks.csv`` counts them per layer. With
layers on analog tiles (``--tile_rows``) or with ADCs it also writes ``tiles.npz``: for one sample, each such
layer's input integers, every tile's psum and ADC code, and the output they give. With
``--onnx FILE`` it writes the noise-free quantized network in QDQ form instead (``noisesim.export.onnx``), runs it
with ONNX Runtime on one evaluation batch and prints the largest output difference and the top-1 agreement.
"""
from __future__ import annotations

import json
import sys
from argparse import RawDescriptionHelpFormatter
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from noisesim.batches import split_batch
from noisesim.context import noise_disabled
from noisesim.data.tensors import peek
from noisesim.experiment.config import ExperimentConfig
from noisesim.experiment.folder import RunFolder
from noisesim.experiment.runner import Experiment
from noisesim.export.hardware import OVERFLOW, write_tile
from noisesim.export.integers import ExportError, export_model, save_export
from noisesim.export.verify import (captured_inputs, checks_frame, integer_inference, overflow_report, tile_vectors,
                                    verify_layers)
from noisesim.io import atomic_write
from noisesim.train.loop import evaluate
from noisesim.usage import Parser, UsageError, fail


PROG = "noisesim export"


def build_parser(prog: str = PROG) -> Parser:
    p = Parser(prog=prog, description=__doc__, formatter_class=RawDescriptionHelpFormatter)
    p.add_argument("run", help="a run folder written by main.py (its config.json names model, data and quantization)")
    p.add_argument("--point", help="point_id of the point to export (default: the run's first point)")
    p.add_argument("--out", help="output folder (default: RUN/export)")
    p.add_argument("--tolerance", type=float, default=1e-5,
                   help="largest recovery error allowed, relative to a layer's output range (default: 1e-5)")
    p.add_argument("--psum_bits", type=int, default=16, help="accumulator width for overflow checks and psum files "
                   "[bits] (default: 16)")
    p.add_argument("--psum_overflow", choices=OVERFLOW, default="error",
                   help="a psum that does not fit --psum_bits: error (stop, write nothing), wrap (two's complement, "
                   "an adder without saturation) or saturate (clamp to the range); counted in checks.csv "
                   "(default: error)")
    p.add_argument("--integer_accuracy", action="store_true",
                   help="also run the whole evaluation set with every layer in integers and compare accuracies")
    p.add_argument("--layer", help="write the test-bench files of this convolution (a layer name)")
    p.add_argument("--array", type=int, default=8, help="systolic array size A (A x A) (default: 8)")
    p.add_argument("--itile", type=int, default=0, help="input-channel tile of the array's rows (default: 0)")
    p.add_argument("--otile", type=int, default=0, help="output-channel tile of the array's columns (default: 0)")
    p.add_argument("--sample", type=int, default=0, help="which sample of the batch feeds the tile (default: 0)")
    p.add_argument("--onnx", metavar="FILE", help="write the noise-free quantized network as QDQ ONNX (opset 13) to "
                   "FILE instead, and compare ONNX Runtime's outputs with noisesim's on one evaluation batch")
    return p


class _Error(Exception):
    pass


def _experiment(run: Path) -> tuple[Experiment, ExperimentConfig]:
    try:
        config = json.loads((run / "config.json").read_text())["experiment"]
        cfg = ExperimentConfig.from_dict({**config, "progress": False})
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise _Error(f"{run}: not a run folder with a readable config.json ({type(e).__name__}: {e})") from None
    exp = Experiment(cfg)
    exp.folder = RunFolder(run)
    return exp, cfg


def main(argv: Optional[Sequence[str]] = None, prog: str = PROG) -> int:
    try:
        return _run(build_parser(prog).parse_args(argv))
    except (UsageError, _Error, ExportError, ValueError, FileNotFoundError) as e:
        return fail(prog, e)


def _run(args) -> int:
    for flag in ("psum_bits", "array"):
        if getattr(args, flag) < 2:
            raise _Error(f"--{flag} {getattr(args, flag)}: must be >= 2")
    for flag in ("itile", "otile", "sample"):
        if getattr(args, flag) < 0:
            raise _Error(f"--{flag} {getattr(args, flag)}: must be >= 0")
    if not args.tolerance > 0:
        raise _Error(f"--tolerance {args.tolerance}: must be > 0")
    run = Path(args.run)
    exp, cfg = _experiment(run)
    points = {exp.point_id(p): p for p in cfg.points()}
    if args.point and args.point not in points:
        raise _Error(f"--point {args.point}: not a point of {run} ({', '.join(list(points)[:5])}, ...)")
    pid = args.point or next(iter(points))
    sim = exp.build(points[pid])
    if args.onnx:
        return _onnx(sim, exp, Path(args.onnx))
    layers, skipped = export_model(sim)
    if not layers:
        raise _Error(f"{run}: no layer of point {pid} has quantized weights and inputs to export")
    if args.layer and args.layer not in layers:
        raise _Error(f"--layer {args.layer}: not an exported layer ({', '.join(list(layers)[:6])}, ...)")
    out = Path(args.out) if args.out else run / "export"
    batch, _ = split_batch(peek(exp.val_data))
    checks = checks_frame(verify_layers(sim, batch, layers))
    overflow = overflow_report(sim, [batch], args.psum_bits, layers)
    report = checks.merge(overflow[["layer", "bits_needed", "overflows"]].rename(columns={"layer": "name"}), on="name")
    overflows = int(report["overflows"].sum())
    if overflows and args.psum_overflow == "error":
        worst = report.loc[report["bits_needed"].idxmax()]
        raise _Error(f"--psum_bits {args.psum_bits}: {overflows:,} psums of {int((report['overflows'] > 0).sum())} "
                     f"layers do not fit (layer {worst['name']} needs {worst['bits_needed']} bits); raise --psum_bits "
                     "or pass --psum_overflow wrap or saturate")
    if args.layer:  # first: a tile outside the layer, or psums that stop the export, leave nothing written
        x = captured_inputs(sim, batch)[args.layer][0]
        if not args.sample < len(x):
            raise _Error(f"--sample {args.sample}: the batch holds {len(x)} samples")
        paths = write_tile(layers[args.layer], x, out / "hardware", args.array, args.itile, args.otile,
                           args.psum_bits, args.sample, args.psum_overflow)
    on_tiles = any(li.tile_rows is not None or li.adc_scale is not None for li in layers.values())
    tiles = tile_vectors(layers, captured_inputs(sim, batch), args.sample) if on_tiles else {}
    if tiles:  # the analog tiles' psums and ADC codes of one sample, for an RTL test bench
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "tiles.npz", lambda f: np.savez_compressed(f, **tiles), binary=True)
    atomic_write(out / "checks.csv", lambda f: report.to_csv(f, index=False))
    save_export(layers, out, {"run": str(run), "point_id": pid, "skipped": skipped, "psum_bits": args.psum_bits,
                              "psum_overflow": args.psum_overflow})
    print(report.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    for name, why in skipped.items():
        print(f"not exported: {why}")
    fake = integer = None
    if args.integer_accuracy:
        with torch.no_grad(), noise_disabled(sim):
            fake = evaluate(sim, exp.val_data, exp.task)
            with integer_inference(sim, layers):
                integer = evaluate(sim, exp.val_data, exp.task)
        print(f"evaluation set: fake-quantized {exp.task.name} {fake:.4f}, integer-only {integer:.4f}")
    atomic_write(out / "summary.md", lambda f: f.write(_summary(run, report, args.psum_bits, fake, integer)))
    if args.layer:
        print(f"test-bench files: {len(paths)} in {out / 'hardware'}")
    if tiles:
        print(f"analog tiles (psums{' and ADC codes' if any(k.endswith('adc_code') for k in tiles) else ''} of sample "
              f"{args.sample}): {out / 'tiles.npz'}")
    worst = report["relative_error"].max()
    handled = {"error": "", "wrap": " (written wrapped)", "saturate": " (written saturated)"}[args.psum_overflow]
    print(f"integers: {out / 'integers.npz'} ({len(layers)} layers); largest recovery error {worst:.3g} of a "
          f"layer's output range (tolerance {args.tolerance:g}); {overflows} psums overflow {args.psum_bits} bits"
          f"{handled if overflows else ''}")
    return 0 if worst <= args.tolerance else 1


def _summary(run: Path, report, psum_bits: int, fake: Optional[float], integer: Optional[float]) -> str:
    """One Markdown row for the docs: the export's layers, worst recovery error, psum widths and, with
    --integer_accuracy, the evaluation set's accuracy fake-quantized and with every layer in integers."""
    pct = (lambda v: "—" if v is None else f"{v * 100:.2f}%")
    bits = report["bits_needed"]
    return ("| run | layers | largest recovery error (of the layer's output range) | psum bits needed | "
            f"psums over {psum_bits} bits | fake-quantized accuracy | integer-only accuracy |\n"
            "|---|---|---|---|---|---|---|\n"
            f"| {run.name} | {len(report)} | {report['relative_error'].max():.2g} | {bits.min()}–{bits.max()} | "
            f"{int(report['overflows'].sum())} | {pct(fake)} | {pct(integer)} |\n")


def _onnx(sim, exp: Experiment, path: Path) -> int:
    from noisesim.export.onnx import compare_with_onnxruntime, to_onnx

    if not path.parent.is_dir():
        raise _Error(f"--onnx {path}: no folder {path.parent}")
    batch, _ = split_batch(peek(exp.val_data))
    inputs = tuple(batch) if isinstance(batch, (tuple, list)) else batch
    if isinstance(inputs, dict):
        raise _Error("--onnx: models that take a dict of inputs are exported with noisesim.export.to_onnx")
    names = tuple(f"input_{i}" for i in range(len(inputs))) if isinstance(inputs, tuple) else ("input",)
    print(to_onnx(sim, inputs, path, input_names=names))
    worst, agree, n, margins = compare_with_onnxruntime(path, sim, inputs, names)
    ties = f" (where they differ, noisesim's top-2 margins: {', '.join(f'{m:.3g}' for m in margins)})" if margins else ""
    print(f"ONNX Runtime against noisesim on {n} evaluation examples: largest output difference {worst:.3g}, "
          f"top-1 agreement {agree:.2%}{ties}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
