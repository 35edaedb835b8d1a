"""Publication-quality plots from results files (PNG and PDF side by side)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

LABELS = {"uniform": "uniform", "layer": "trained per layer", "channel": "trained per channel"}


def _save(fig, stem: Path) -> list[Path]:
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.tight_layout()
    for p in paths:
        fig.savefig(p, dpi=200)
    plt.close(fig)
    return paths


def accuracy_vs_energy(results: pd.DataFrame, stem: Path, title: str = "") -> list[Path]:
    """Accuracy against average energy (aJ/MAC, log axis): one curve per noise type and allocation,
    95% confidence bands from the Monte-Carlo repeats, the float accuracy dashed."""
    df = results[results["noise_type"] != "none"].copy()
    if df.empty:
        return []
    sns.set_theme(style="whitegrid", context="paper")
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    palette = sns.color_palette("deep")
    groups = list(df.groupby(["noise_type", "allocation"], sort=True))
    for i, ((noise, alloc), g) in enumerate(groups):
        g = g.sort_values("avg_emac_aj")
        ci = g["accuracy_ci95"].fillna(0) * 100
        label = f"{noise}, {LABELS.get(alloc, alloc)}" if df["noise_type"].nunique() > 1 else LABELS.get(alloc, alloc)
        ax.plot(g["avg_emac_aj"], g["accuracy"] * 100, marker="o", ms=4, color=palette[i % 10], label=label)
        ax.fill_between(g["avg_emac_aj"], g["accuracy"] * 100 - ci, g["accuracy"] * 100 + ci,
                        color=palette[i % 10], alpha=0.2, lw=0)
    if "float_accuracy" in df and df["float_accuracy"].notna().any():
        ax.axhline(df["float_accuracy"].iloc[0] * 100, color="k", ls="--", lw=1, label="float")
    ax.set_xscale("log")
    ax.set_xlabel("average energy per MAC (aJ)")
    ax.set_ylabel("accuracy (%)")
    if title:
        ax.set_title(title)
    ax.legend(frameon=False, fontsize=7)
    return _save(fig, stem)
