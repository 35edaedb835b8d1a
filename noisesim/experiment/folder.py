"""A run folder: config.json, results.csv (one row per sweep point), per-point layers and allocations.

    config.json              the experiment's settings, each with its label, unit and help
    results.csv              one row per point (columns: docs/results.md)
    layers/<point_id>.csv    one row per layer (noisesim.energy_report)
    layers/<point_id>_channels.csv   one row per output channel (noisesim.channel_report)
    allocations/<point_id>.json      the allocation the point evaluated (noisesim.allocate.Allocation)
    outcomes/<id>.npz        per-example outcomes of every noise draw (draws x examples), the targets and
                             the metric, for a point, the float model ("float") or a noise-free
                             quantized model ("clean-<hash>")

Nothing is lost: rows are appended atomically, a finished point is recognised by its id
(``--resume`` skips it), and an existing folder is never touched without ``--resume`` or
``--overwrite`` (which moves the old folder aside rather than deleting it). Under torchrun only
process 0 writes; the others read the same folder (``writable=False``).
"""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from noisesim.allocate import Allocation
from noisesim.io import append_csv_row, atomic_write, read_csv_rows, write_json

if TYPE_CHECKING:
    import pandas as pd


class RunFolderError(Exception):
    """The run folder cannot be used as asked (one-line message)."""


class RunFolder:
    def __init__(self, path: Path, writable: bool = True):
        self.path, self.writable = Path(path), writable

    @classmethod
    def open(cls, log_dir: str, run_name: str, overwrite: bool, resume: bool) -> "RunFolder":
        path = Path(log_dir) / run_name
        if path.exists() and any(path.iterdir()):
            if overwrite:
                backup = path.with_name(f"{path.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
                path.rename(backup)
                print(f"--overwrite: previous run moved to {backup}")
            elif not resume:
                raise RunFolderError(f"run folder {path} exists; pass --resume to continue it or --overwrite "
                                     "to start over (the old folder is kept aside)")
            else:
                cls(path).check()
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    def check(self) -> None:
        """Before ``--resume`` continues the folder: results.csv and the saved allocations must be readable."""
        try:
            rows = read_csv_rows(self.results_csv)
        except (UnicodeDecodeError, csv.Error) as e:
            raise RunFolderError(f"--resume: {self.results_csv} is not a readable CSV file ({type(e).__name__}); "
                                 "move it aside or pass --overwrite") from None
        if rows and "point_id" not in rows[0]:
            raise RunFolderError(f"--resume: {self.results_csv} has no point_id column (not a noisesim results "
                                 "file); move it aside or pass --overwrite")
        for f in sorted((self.path / "allocations").glob("*.json")):
            try:
                Allocation.load(f)
            except ValueError as e:
                raise RunFolderError(f"--resume: {e}; delete that file to recompute its point") from None

    @property
    def results_csv(self) -> Path:
        return self.path / "results.csv"

    def write_config(self, config: dict[str, Any]) -> None:
        if not self.writable:
            return
        write_json(self.path / "config.json", config)

    def write_timing(self, seconds: dict[str, float]) -> None:
        """``timing.json``: the wall seconds per phase of the latest invocation (see ``experiment/phases.py``)."""
        if self.writable:
            write_json(self.path / "timing.json", seconds)

    def done(self) -> dict[str, dict[str, str]]:
        """Finished points: id -> row."""
        return {row["point_id"]: row for row in read_csv_rows(self.results_csv)}

    def append(self, row: dict[str, Any]) -> None:
        if not self.writable:
            return
        append_csv_row(self.results_csv, row)

    def write_point(self, point_id: str, layers: pd.DataFrame, channels: Optional[pd.DataFrame],
                    allocation: Allocation) -> None:
        if not self.writable:
            return
        atomic_write(self.path / "layers" / f"{point_id}.csv", lambda f: layers.to_csv(f, index=False))
        if channels is not None:
            atomic_write(self.path / "layers" / f"{point_id}_channels.csv", lambda f: channels.to_csv(f, index=False))
        allocation.save(self.path / "allocations" / f"{point_id}.json")
        if allocation.info.get("log"):  # a method's own log (greedy: each layer's drop, ACCEPT / REJECT)
            text = "\n".join(allocation.info["log"]) + "\n"
            atomic_write(self.path / "allocations" / f"{point_id}.log", lambda f: f.write(text))

    def has_allocation(self, point_id: str) -> bool:
        return (self.path / "allocations" / f"{point_id}.json").is_file()

    def read_allocation(self, point_id: str) -> Allocation:
        return Allocation.load(self.path / "allocations" / f"{point_id}.json")

    def write_outcomes(self, name: str, outcomes: np.ndarray, targets: np.ndarray, metric: str) -> None:
        """``outcomes/<name>.npz``: outcomes (draws x examples; 0/1 stored as uint8), targets, metric name."""
        if not self.writable:
            return
        packed = outcomes.astype(np.uint8) if np.isin(outcomes, (0, 1)).all() else outcomes.astype(np.float32)
        buf = io.BytesIO()
        np.savez_compressed(buf, outcomes=packed, targets=targets.astype(np.float32), metric=np.array(metric))
        atomic_write(self.path / "outcomes" / f"{name}.npz", lambda f: f.write(buf.getvalue()), binary=True)
