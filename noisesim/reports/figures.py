"""Everything drawn or written from a run's files: plots, quantization card, points, savings and greedy tables.

``draw_run(run_dir)`` redraws one run (``main.py`` calls it at the end of every run,
``python main.py plot`` on demand); ``compare_runs(run_dirs, out_dir)`` puts runs that
differ in some setting (per-channel weights, symmetric activations, another baseline, ...)
on the same axes, labelled by the settings that differ. Reports read run folders only
(results.csv, config.json, layers/); they never run anything.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from noisesim.reports.cards import write_card
from noisesim.reports.curves import (accuracy_vs_bits, accuracy_vs_energy, iso_accuracy, noise_bits_accuracy,
                                     photon_energy)
from noisesim.reports.greedy import write_greedy
from noisesim.reports.joules import write_joules
from noisesim.reports.layers import bits_by_layer, by_layer, load_layers, snr_plots
from noisesim.reports.points import write_points
from noisesim.reports.savings import read_results, write_savings


def _title(df: pd.DataFrame) -> str:
    """'resnet20 on fashion_mnist · thermal, shot noise · W8A8' from the rows."""
    if not {"model", "dataset"} <= set(df) or df.empty:
        return ""
    parts = [" / ".join(f"{m} on {d}" for m, d in df[["model", "dataset"]].drop_duplicates().itertuples(index=False))]
    noises = [n for n in dict.fromkeys(df.get("noise_type", pd.Series(dtype=str))) if n != "none"]
    parts.append(f"{', '.join(noises)} noise" if noises else "no noise")
    if {"weight_bits", "act_bits"} <= set(df):
        bits = sorted({f"W{_bits(w)}A{_bits(a)}" for w, a in zip(df["weight_bits"], df["act_bits"])})
        parts.append(", ".join(bits) if len(bits) <= 3 else f"{len(bits)} bit-widths")
    return " · ".join(parts)


def _bits(b) -> str:
    return "float" if b is None or b != b else f"{float(b):g}"


def _value_text(v) -> str:
    """A setting's value as a legend shows it."""
    if isinstance(v, bool):
        return "on" if v else "off"
    if v is None or v == []:
        return "—"
    return " ".join(map(str, v)) if isinstance(v, list) else str(v)


def run_fields(run_dir: Path) -> Optional[dict[str, dict]]:
    """The experiment fields a run recorded in its config.json (None for a folder without one)."""
    path = Path(run_dir) / "config.json"
    try:
        return json.loads(path.read_text()).get("fields")
    except (OSError, ValueError, AttributeError):
        return None


def draw_results(df: pd.DataFrame, out: Path, title: str) -> list[Path]:
    """The run-level plots of some result rows."""
    paths = accuracy_vs_energy(df, out / "accuracy_vs_energy", title)
    paths += accuracy_vs_bits(df, out / "accuracy_vs_bits", title)
    paths += noise_bits_accuracy(df, out / "noise_bits_accuracy", title)
    return paths


def draw_run(run_dir: Path, plots: bool = True, target: Optional[dict] = None) -> list[Path]:
    """The card, the savings tables and, with ``plots``, all plots of one run folder (``target``: iso-accuracy
    settings overriding the run's own, e.g. {"acc_drop": 0.02, "curve_fit": "isotonic"})."""
    run_dir = Path(run_dir)
    df = read_results(run_dir / "results.csv")
    if df.empty:
        return []
    title = _title(df)
    paths = write_card(df, run_dir, title, {"this run": run_fields(run_dir)}) + write_points(df, run_dir)
    savings = write_savings([run_dir], run_dir, target)
    paths += savings + write_greedy(run_dir, plots)
    if "energy_j" in df:
        paths += write_joules(df, load_layers(run_dir, df), run_dir, plots, title)
    if not plots:
        return paths
    paths += draw_results(df, run_dir, title)
    if (run_dir / "savings.csv") in savings:
        paths += iso_accuracy(df, pd.read_csv(run_dir / "savings.csv"), run_dir / "iso_accuracy", title)
    layers = load_layers(run_dir, df)
    if not layers.empty:
        paths += by_layer(layers, "e_mac", "energy per MAC (photons)", run_dir / "energy_by_layer", log=True,
                          band=("e_min", "e_max"), aj=photon_energy(df), title=title)
        paths += by_layer(layers, "noise_bits", "noise bits (ENOB)", run_dir / "noise_bits_by_layer", title=title)
        paths += bits_by_layer(layers, run_dir / "bits_by_layer", title=title)
    paths += snr_plots(load_layers(run_dir, df, channels=True), run_dir / "snr", title=title)
    return paths


def settings_labels(fields: Sequence[Optional[dict[str, dict]]], names: Sequence[str]) -> list[str]:
    """A label per run from the recorded run-wide settings that differ between the runs (else the run names)."""
    if any(f is None for f in fields):
        return list(names)
    keys = [k for k, f in fields[0].items() if f.get("record") and not f.get("sweep")]
    differ = [k for k in keys if len({json.dumps(f.get(k, {}).get("value"), sort_keys=True) for f in fields}) > 1]
    if not differ:
        return list(names)
    # a run written before a setting existed has no entry for it: "—"
    return [", ".join(f"{f.get(k, fields[0][k]).get('label') or k.replace('_', ' ')}: "
                      f"{_value_text(f.get(k, {}).get('value'))}" for k in differ) for f in fields]


def compare_runs(run_dirs: Sequence[Path], out_dir: Path, target: Optional[dict] = None) -> list[Path]:
    """Comparison plots, a card with one confounder column per run, and a joint savings table."""
    run_dirs = [Path(d) for d in run_dirs]
    frames = [read_results(d / "results.csv") for d in run_dirs]
    fields = [run_fields(d) for d in run_dirs]
    labels = settings_labels(fields, [d.name for d in run_dirs])
    df = pd.concat([f.assign(setting=label) for f, label in zip(frames, labels)], ignore_index=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = _title(df)
    paths = draw_results(df, out_dir, title)
    paths += write_card(df, out_dir, title, dict(zip(labels, fields)))
    paths += write_savings(run_dirs, out_dir, target, labels)
    return paths
