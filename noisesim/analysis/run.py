"""What ``python main.py`` does: validate -> load -> sweep or search -> results, plot.

Exit codes: 0 done, 2 bad input (a one-line message, nothing written).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Optional, Sequence

import pandas as pd

from noisesim.analysis.figures import draw_run
from noisesim.analysis.runs import RunFolder, RunFolderError
from noisesim.analysis.search import geometric_bisect, saving
from noisesim.analysis.sweep import Experiment, Point, sim_config, sweep_points
from noisesim.cli import UsageError, parse_args
from noisesim.config import ConfigError
from noisesim.data.fashion_mnist import DataNotFoundError
from noisesim.io import append_csv_row


def _fail(message: str) -> int:
    print(f"main.py: error: {message}", file=sys.stderr)
    return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = parse_args(argv)
        points = sweep_points(args)
        for p in points:
            sim_config(args, p)
    except (UsageError, ConfigError) as e:
        return _fail(str(e))
    try:
        exp = Experiment(args)
        folder = RunFolder.open(args.log_dir, args.run_name, args.overwrite, args.resume)
    except (DataNotFoundError, RunFolderError, ImportError, ValueError) as e:
        return _fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
    folder.write_config(vars(args))
    writer = _writer(folder)
    if args.binary_search:
        run_search(exp, folder, points, writer)
    else:
        run_sweep(exp, folder, points, writer)
    if writer is not None:
        writer.close()
    if folder.results_csv.exists():
        paths = draw_run(folder.path, plots=not args.no_plot)
        print(f"quantization card{'' if args.no_plot else ', plots'}: {len(paths)} files in {folder.path}")
    print(f"results: {folder.results_csv}")
    return 0


def _writer(folder: RunFolder):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder.path / "tb"))


def run_sweep(exp: Experiment, folder: RunFolder, points: list[Point], writer) -> None:
    done = folder.done()
    todo = [p for p in points if p.point_id(exp.fixed) not in done]
    if len(todo) < len(points):
        print(f"--resume: {len(points) - len(todo)} of {len(points)} points already done")
    for i, p in enumerate(todo, 1):
        row = exp.run_point(p, folder, writer)
        if writer is not None:
            writer.add_scalar(f"accuracy/{p.noise_type}-{p.allocation}", row["accuracy"], i)
        print(_summary(row, f"[{i}/{len(todo)}]"))


def _summary(row: dict, prefix: str) -> str:
    text = (f"{prefix} {row['noise_type']:<7} {row['allocation']:<7} target E={row['target_emac']} "
            f"avg E={row['avg_emac']:.4g} ph ({row['avg_emac_aj']:.4g} aJ)/MAC  acc={row['accuracy']:.4f}"
            f"±{row['accuracy_ci95']:.4f}")
    if row.get("uniform_accuracy_same_energy") is not None:
        text += f"  uniform@same E={row['uniform_accuracy_same_energy']:.4f}"
    return text


def run_search(exp: Experiment, folder: RunFolder, points: list[Point], writer) -> None:
    """Bisect the energy of every allocation to the target accuracy; write search.csv and savings."""
    args = exp.args
    target = args.target_acc if args.target_acc is not None else exp.float_accuracy() - args.acc_drop
    groups: dict[Point, None] = {}
    for p in points:
        groups.setdefault(dataclasses.replace(p, target_emac=None), None)
    found: dict[tuple, Optional[float]] = {}
    for base in groups:
        if base.noise_type == "none":
            continue

        def accuracy_at(e: float, base=base) -> float:
            p = dataclasses.replace(base, target_emac=e)
            done = folder.done().get(p.point_id(exp.fixed))
            return float(done["accuracy"]) if done else \
                exp.run_point(p, folder, writer, compare_uniform=False)["accuracy"]

        res = geometric_bisect(accuracy_at, target, args.e_min, args.e_max, args.search_steps)
        key = (base.noise_type, base.weight_bits, base.act_bits, base.seed)
        found[(base.allocation,) + key] = res.energy
        row = {**dataclasses.asdict(base), "model": args.model, "dataset": args.dataset, "target_accuracy": target,
               "energy": res.energy, "energy_aj": None if res.energy is None else res.energy * args.photon_energy,
               "accuracy": res.accuracy, "probes": len(res.probes),
               "saving_vs_uniform": saving(res.energy, found.get(("uniform",) + key))}
        append_csv_row(folder.path / "search.csv", row)
        e_text = "not reached" if res.energy is None else f"{res.energy:.4g} photons/MAC"
        print(f"search {base.noise_type} {base.allocation}: {e_text} for accuracy >= {target:.4f}"
              + (f", saving {row['saving_vs_uniform']:.1%} vs uniform" if row["saving_vs_uniform"] is not None
                 else ""))
    if (folder.path / "search.csv").exists():
        print(pd.read_csv(folder.path / "search.csv")[["noise_type", "allocation", "energy", "accuracy",
                                                       "saving_vs_uniform"]].to_string(index=False))
