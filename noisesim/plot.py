"""Redraw a run's plots from its results files.

    python -m noisesim.plot logs/<run_name>      # writes accuracy_vs_energy.png / .pdf there
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from noisesim.analysis.plots import accuracy_vs_energy


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m noisesim.plot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="a run folder holding results.csv")
    args = p.parse_args(argv)
    results = Path(args.run_dir) / "results.csv"
    if not results.is_file():
        print(f"noisesim.plot: error: {results} not found", file=sys.stderr)
        return 2
    df = pd.read_csv(results)
    title = f"{df['model'].iloc[0]} on {df['dataset'].iloc[0]}" if {"model", "dataset"} <= set(df) and len(df) else ""
    paths = accuracy_vs_energy(df, Path(args.run_dir) / "accuracy_vs_energy", title)
    if not paths:
        print("noisesim.plot: error: no noisy points to plot (all rows have noise_type none)", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
