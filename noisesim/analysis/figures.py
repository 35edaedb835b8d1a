"""Everything drawn or written from a run's files: plots, quantization card, savings table.

``draw_run(run_dir)`` redraws one run (``main.py`` calls it at the end of every run,
``python -m noisesim.plot`` on demand); ``compare_runs(run_dirs, out_dir)`` puts runs that
differ in some setting (per-channel weights, symmetric activations, another baseline, ...)
on the same axes, labelled by the settings that differ.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from noisesim.analysis.cards import write_card
from noisesim.analysis.layer_plots import bits_by_layer, by_layer, load_layers, snr_plots
from noisesim.analysis.plots import accuracy_vs_bits, accuracy_vs_energy, noise_bits_accuracy
from noisesim.analysis.savings import read_searches, write_savings
from noisesim.analysis.sweep import FIXED_FIELDS


def _title(df: pd.DataFrame) -> str:
    if not {"model", "dataset"} <= set(df) or df.empty:
        return ""
    return " / ".join(f"{m} on {d}" for m, d in df[["model", "dataset"]].drop_duplicates().itertuples(index=False))


def draw_results(df: pd.DataFrame, out: Path, title: str) -> list[Path]:
    """The run-level plots of some result rows."""
    paths = accuracy_vs_energy(df, out / "accuracy_vs_energy", title)
    paths += accuracy_vs_bits(df, out / "accuracy_vs_bits", title)
    paths += noise_bits_accuracy(df, out / "noise_bits_accuracy", title)
    return paths


def draw_run(run_dir: Path, plots: bool = True) -> list[Path]:
    """The card, (after a search) the savings table and, with ``plots``, all plots of one run folder."""
    run_dir = Path(run_dir)
    df = pd.read_csv(run_dir / "results.csv")
    if df.empty:
        return []
    title = _title(df)
    paths = write_card(df, run_dir, title)
    paths += write_savings(read_searches([run_dir]), run_dir)
    if not plots:
        return paths
    paths += draw_results(df, run_dir, title)
    layers = load_layers(run_dir, df)
    if not layers.empty:
        paths += by_layer(layers, "e_mac", "energy per MAC (photons)", run_dir / "energy_by_layer", log=True,
                          band=("e_min", "e_max"))
        paths += by_layer(layers, "noise_bits", "noise bits (ENOB)", run_dir / "noise_bits_by_layer")
        paths += bits_by_layer(layers, run_dir / "bits_by_layer")
    paths += snr_plots(load_layers(run_dir, df, channels=True), run_dir / "snr")
    return paths


def settings_labels(frames: Sequence[pd.DataFrame], names: Sequence[str]) -> list[str]:
    """A label per run from the fixed settings that differ between the runs (else the run names)."""
    firsts = [f.iloc[0] for f in frames]
    differ = [k for k in FIXED_FIELDS + ("baseline",) if k in frames[0] and
              len({str(r.get(k)) for r in firsts}) > 1]
    if "baseline" in differ and "checkpoint_path" in differ:
        differ.remove("checkpoint_path")  # the baseline names the checkpoint file and its hash
    if not differ:
        return list(names)
    return [", ".join(f"{k}={r.get(k)}" for k in differ) for r in firsts]


def compare_runs(run_dirs: Sequence[Path], out_dir: Path) -> list[Path]:
    """Comparison plots, a card with one confounder column per run, and a joint savings table."""
    run_dirs = [Path(d) for d in run_dirs]
    frames = [pd.read_csv(d / "results.csv") for d in run_dirs]
    labels = settings_labels(frames, [d.name for d in run_dirs])
    df = pd.concat([f.assign(setting=label) for f, label in zip(frames, labels)], ignore_index=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = _title(df)
    paths = draw_results(df, out_dir, title)
    paths += write_card(df, out_dir, title)
    paths += write_savings(read_searches(run_dirs), out_dir)
    return paths
