"""What ``python main.py`` does: parse -> validate -> load -> sweep or search -> results, card, plots.

Exit codes: 0 done, 2 bad input (a one-line message, nothing written).
"""
from __future__ import annotations

import contextlib
import io
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from noisesim import distributed
from noisesim.config import ConfigError
from noisesim.data.bundle import DataFileError, DataNotFoundError, error_line
from noisesim.experiment.cli import UsageError, parse_args
from noisesim.experiment.config import Point
from noisesim.experiment.folder import RunFolder, RunFolderError
from noisesim.experiment.phases import progress_line
from noisesim.registry import PluginError

if TYPE_CHECKING:
    from noisesim.experiment.runner import Experiment


def _fail(message: str, prog: str = "main.py") -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def main(argv: Optional[Sequence[str]] = None, prog: str = "main.py") -> int:
    try:
        cfg = parse_args(argv, prog)
    except (UsageError, ConfigError) as e:
        return _fail(str(e), prog)
    points = cfg.points()
    for pair in cfg.skipped():
        print(f"note: {pair} is not a method's granularity; left out of the sweep", file=sys.stderr)
    if distributed.is_main():
        print(plan_line(cfg, len(points)))
    from noisesim.experiment.runner import Experiment  # torch models, data and plots load once the flags are good

    try:
        exp = Experiment(cfg)
    except (DataNotFoundError, RunFolderError, ImportError, ValueError) as e:
        return _fail(error_line(e), prog)
    with contextlib.redirect_stdout(io.StringIO()) if not distributed.is_main() else contextlib.nullcontext():
        return _run(cfg, exp, points, argv, prog)


def plan_line(cfg, n_points: int) -> str:
    """What will run and where it goes, printed before anything loads."""
    kinds = ", ".join(f"{k} {' '.join(map(str, v))}" for k, v in
                      (("noise", cfg.noise_type), ("allocation", cfg.allocation), ("granularity", cfg.granularity)))
    return (f"{'search' if cfg.binary_search else 'sweep'}: {n_points} points of {cfg.model} on {cfg.dataset} "
            f"({kinds}) -> {Path(cfg.log_dir) / cfg.run_name}; each finished point prints the time left")


def _run(cfg, exp: Experiment, points: list[Point], argv, prog: str) -> int:
    """Open the run folder (process 0 creates it; the others read it), run, draw."""
    error = None
    if distributed.is_main():
        try:
            folder = RunFolder.open(cfg.log_dir, cfg.run_name, cfg.overwrite, cfg.resume)
        except (RunFolderError, ValueError) as e:
            error = str(e).splitlines()[0] if str(e) else type(e).__name__
    error = distributed.from_main(error)
    if error is not None:
        return _fail(error, prog) if distributed.is_main() else 2
    if not distributed.is_main():
        folder = RunFolder(Path(cfg.log_dir) / cfg.run_name, writable=False)
    folder.write_config({"experiment": cfg.to_dict(), "fields": cfg.describe(), "provenance": exp.provenance,
                         "coverage": exp.coverage.to_dict(), "command": [prog, *(sys.argv[1:] if argv is None
                                                                               else argv)]})
    writer = _writer(folder) if distributed.is_main() else None
    try:
        if cfg.binary_search:
            import pandas as pd

            from noisesim.experiment.search import run_search

            run_search(exp, folder, points, writer)
            if (folder.path / "search.csv").exists():
                print(pd.read_csv(folder.path / "search.csv")[["noise_type", "allocation_label", "energy", "accuracy",
                                                               "saving_vs_uniform"]].to_string(index=False))
        else:
            run_sweep(exp, folder, points, writer)
    except (DataFileError, PluginError) as e:  # a corrupt file read lazily, or a plugin failing, mid-run: the
        return _fail(error_line(e), prog)       # finished points stay (--resume)
    if writer is not None:
        writer.close()
    distributed.barrier()
    if folder.results_csv.exists() and distributed.is_main():
        from noisesim.reports.figures import draw_run

        with exp.phases("card and plots"):
            paths = draw_run(folder.path, plots=not cfg.no_plot)
        print(f"quantization card{'' if cfg.no_plot else ', plots'}: {len(paths)} files in {folder.path}")
        folder.write_timing(exp.phases.to_dict())
        print(f"time: {exp.phases.summary()} (timing.json)")
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
    todo = sum(exp.point_id(p) not in done for p in points)
    if todo < len(points):
        print(f"--resume: {len(points) - todo} of {len(points)} points already done")
    start = time.perf_counter()
    for i, (p, row) in enumerate(exp.run_points(points, folder, writer), 1):
        if writer is not None:
            writer.add_scalar(f"accuracy/{p.noise_type}-{p.allocation}-{p.granularity}", row["accuracy"], i)
        print(f"{_summary(row, f'[{i}/{todo}]')}  ({progress_line(i, todo, time.perf_counter() - start)})")


def _summary(row: dict, prefix: str) -> str:
    text = f"{prefix} {row['noise_type']:<7} {row['allocation_label']:<22}"
    if row["noise_type"] != "none":
        nominal = f"target E={row['target_emac']:g}" if row["target_emac"] is not None else f"E={row['e_mac']:g}"
        text += f" {nominal} avg E={row['avg_emac']:.4g} ph ({row['avg_emac_aj']:.4g} aJ)/MAC"
    if row.get("avg_weight_bits") == row.get("avg_weight_bits"):
        text += f" W{row['avg_weight_bits']:.3g}"
    if row.get("avg_act_bits") == row.get("avg_act_bits") and row.get("avg_act_bits") is not None:
        text += f" A{row['avg_act_bits']:.3g}"
    text += f"  {row['metric']}={row['accuracy']:.4f} [{row['accuracy_lo']:.4f}, {row['accuracy_hi']:.4f}]"
    if row.get("steps"):
        text += f"  {row['steps']} steps{' (converged)' if row.get('converged') else ''}"
    if row.get("uniform_accuracy_same_energy") is not None:
        text += f"  uniform@same E={row['uniform_accuracy_same_energy']:.4f}"
    return text
