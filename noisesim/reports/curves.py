"""Publication-quality plots of a run's rows (results.csv), PNG and PDF side by side.

Every function takes the rows as a DataFrame and a path stem, draws nothing and returns
[] when the rows hold nothing to show, else the written paths. A ``setting`` column
(added when runs are compared, see ``noisesim.reports.figures``) becomes the hue. Allocations
are named by the rows' ``allocation_label`` ("uniform", "trained per channel", ...) and drawn
in a fixed order and colour.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
import pandas as pd
import seaborn as sns

ORDER = ("uniform", "trained per layer", "trained per channel")
PHOTON_ENERGY_AJ = 0.128  # when the rows do not say (1550 nm)


def allocation_order(labels) -> list[str]:
    """Allocation labels in a fixed order: uniform, trained per layer / channel, then the others sorted."""
    present = set(labels)
    return [a for a in ORDER if a in present] + sorted(present - set(ORDER))


def allocation_palette(labels) -> dict[str, tuple]:
    """One colour per allocation label, the same in every plot."""
    order = allocation_order(labels)
    return dict(zip(order, sns.color_palette("deep", max(3, len(order)))))


def style() -> None:
    sns.set_theme(style="whitegrid", context="paper", palette="deep")


def save(fig, stem: Path) -> list[Path]:
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.tight_layout()
    for p in paths:
        fig.savefig(p, dpi=200, bbox_inches="tight")
    plt.close(fig)
    return paths


def curve_label(keys: tuple, names: tuple[str, ...]) -> str:
    """'thermal, trained per layer' from group keys."""
    return ", ".join(str(k) for k in keys)


def _hue(df: pd.DataFrame, candidates: tuple[str, ...]) -> tuple[str, ...]:
    """The grouping columns that actually vary (at least one, so every frame has a group)."""
    varying = tuple(c for c in candidates if c in df and df[c].astype(str).nunique() > 1)
    return varying or tuple(c for c in candidates if c in df)[-1:]


def _float_line(ax, df: pd.DataFrame) -> None:
    if "float_accuracy" in df and df["float_accuracy"].notna().any() and \
            ("setting" not in df or df["float_accuracy"].nunique() == 1):
        ax.axhline(df["float_accuracy"].iloc[0] * 100, color="k", ls="--", lw=1, label="float")


def _band(ax, x, g: pd.DataFrame, color, label, marker="o") -> None:
    """A curve of ``g``'s accuracy with its 95% bootstrap band (``accuracy_lo`` / ``_hi``), in percent."""
    ax.plot(x, g["accuracy"] * 100, marker=marker, ms=4, color=color, label=label)
    lo, hi = (g["accuracy_lo"], g["accuracy_hi"]) if "accuracy_lo" in g else \
        (g["accuracy"] - g["accuracy_ci95"].fillna(0), g["accuracy"] + g["accuracy_ci95"].fillna(0))
    ax.fill_between(x, (lo * 100).clip(lower=0), (hi * 100).clip(upper=100), color=color, alpha=0.2, lw=0)


def band_meaning(df: pd.DataFrame) -> str:
    """What a shaded band is, with the examples and noise draws behind each point."""
    if {"examples", "draws"} <= set(df) and df["examples"].notna().any():
        ex, dr = df["examples"].dropna().astype(int).unique(), df["draws"].dropna().astype(int).unique()
        size = f"{ex[0]:,} examples × {dr[0]} draw{'' if dr[0] == 1 else 's'}" if len(ex) == len(dr) == 1 \
            else "examples × draws"
        return f"shaded: 95% bootstrap CI ({size})"
    return "shaded: 95% CI"


def photon_energy(df: pd.DataFrame) -> float:
    """The photon energy (aJ) the rows were reported with."""
    if "photon_energy" in df and df["photon_energy"].notna().any():
        return float(df["photon_energy"].dropna().iloc[0])
    return PHOTON_ENERGY_AJ


def aj_axis(ax, photon_aj: float, which: str = "x"):
    """A secondary axis in aJ/MAC beside a photons/MAC axis (``which``: x -> top, y -> right)."""
    def to_aj(v):
        return v * photon_aj

    def to_photons(v):
        return v / photon_aj

    sec = ax.secondary_xaxis("top", functions=(to_aj, to_photons)) if which == "x" else \
        ax.secondary_yaxis("right", functions=(to_aj, to_photons))
    axis = sec.xaxis if which == "x" else sec.yaxis
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())
    (sec.set_xlabel if which == "x" else sec.set_ylabel)(f"aJ/MAC ({photon_aj:g} aJ per photon)", fontsize=7)
    sec.tick_params(labelsize=7)
    return sec


def _finish(fig, ax, df: pd.DataFrame, xlabel: str, title: str, stem: Path, legend_size: int = 7,
            bands: bool = True) -> list[Path]:
    """Float line, labels, title, legend (titled with what the bands are); save."""
    _float_line(ax, df)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    if title:
        ax.set_title(title, fontsize=8)
    ax.legend(frameon=False, fontsize=legend_size, title=band_meaning(df) if bands else None,
              title_fontsize=legend_size - 1, loc="best")
    return save(fig, stem)


def log_x(ax) -> None:
    """A log energy axis labelled 1, 2, 5, 10, 20, ... (plain numbers, no minor-tick labels)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _ordered(df: pd.DataFrame) -> pd.DataFrame:
    """Allocations in the fixed order (so colours match across plots)."""
    df = df.copy()
    df["allocation_label"] = pd.Categorical(df["allocation_label"], allocation_order(df["allocation_label"]))
    return df


def _curves(df: pd.DataFrame, names: tuple[str, ...], x: str):
    """A new figure, and per curve (one per group of ``names``): its colour, label and rows sorted by ``x``."""
    style()
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    palette = sns.color_palette("deep", 10)
    groups = [(palette[i % 10], curve_label(keys, names), g.sort_values(x))
              for i, (keys, g) in enumerate(df.groupby(list(names), sort=True, observed=True))]
    return fig, ax, groups


def accuracy_vs_energy(results: pd.DataFrame, stem: Path, title: str = "") -> list[Path]:
    """Accuracy against average energy (photons/MAC, log axis; aJ/MAC on top): one curve per noise type
    and allocation (and setting), 95% bootstrap bands over examples and draws, the float accuracy dashed."""
    df = results[results["noise_type"] != "none"]
    if df.empty:
        return []
    df = _ordered(df)
    names = _hue(df, ("setting", "noise_type", "allocation_label"))
    if "allocation_label" not in names:
        names += ("allocation_label",)
    fig, ax, curves = _curves(df, names, "avg_emac")
    for color, label, g in curves:
        _band(ax, g["avg_emac"], g, color, label)
    log_x(ax)
    aj_axis(ax, photon_energy(df))
    return _finish(fig, ax, df, "average energy per MAC (photons)", title, stem)


def accuracy_vs_bits(results: pd.DataFrame, stem: Path, title: str = "") -> list[Path]:
    """Accuracy against average weight bits (weight-count weighted), one curve per activation
    bit-width (or setting), with 95% confidence bars. Needs at least two distinct averages."""
    df = results.dropna(subset=["avg_weight_bits"]).copy()
    if df.empty or df["avg_weight_bits"].round(3).nunique() < 2:
        return []
    df["act"] = df["avg_act_bits"].round(1).map(lambda b: f"{b:g}-bit activations" if b == b else
                                                  "float activations")
    if "allocation_label" in df:
        df = _ordered(df)
    fig, ax, curves = _curves(df, _hue(df, ("setting", "noise_type", "act", "allocation_label")), "avg_weight_bits")
    for color, label, g in curves:
        ax.errorbar(g["avg_weight_bits"], g["accuracy"] * 100, yerr=g["accuracy_ci95"].fillna(0) * 100,
                    marker="o", ms=4, capsize=2, color=color, label=label)
    return _finish(fig, ax, df, "average weight bits", title, stem, bands=False)


def noise_bits_accuracy(results: pd.DataFrame, stem: Path, title: str = "") -> list[Path]:
    """Accuracy with analog noise and with its equivalent quantizer, against the MAC-weighted
    average noise bits (rows from ``--noise_as_quantizer``)."""
    if "noise_bits_accuracy" not in results:
        return []
    df = results.dropna(subset=["noise_bits_accuracy", "avg_noise_bits"])
    if df.empty:
        return []
    df = _ordered(df)
    fig, ax, curves = _curves(df, _hue(df, ("setting", "noise_type", "allocation_label")), "avg_noise_bits")
    for color, label, g in curves:
        _band(ax, g["avg_noise_bits"], g, color, f"{label}: analog noise")
        ax.plot(g["avg_noise_bits"], g["noise_bits_accuracy"] * 100, ls=":", marker="s", ms=4, color=color,
                label=f"{label}: equivalent quantizer")
    return _finish(fig, ax, df, "average noise bits (MAC-weighted ENOB)", title, stem, legend_size=6)


def iso_accuracy(results: pd.DataFrame, table: pd.DataFrame, stem: Path, title: str = "") -> list[Path]:
    """Per noise type: every allocation's points (95% intervals), its fitted curve, the target accuracy
    and E* with its interval (from the savings table, ``noisesim.reports.savings``)."""
    import json

    from noisesim.stats import Curve

    if table.empty:
        return []
    noises = list(dict.fromkeys(table["noise_type"]))
    style()
    fig, axes = plt.subplots(1, len(noises), figsize=(4.6 * len(noises), 3.6), squeeze=False)
    palette = allocation_palette(table["allocation_label"])
    for ax, noise in zip(axes[0], noises):
        t = table[table["noise_type"] == noise]
        for r in t.to_dict("records"):
            color = palette.get(r["allocation_label"], "k")
            pts = results[(results["noise_type"] == noise) & (results["allocation_label"] == r["allocation_label"])
                          & (results.get("clean_id") == r["clean_id"])].sort_values("avg_emac")
            ax.errorbar(pts["avg_emac"], pts["accuracy"] * 100, fmt="o", ms=3, color=color, capsize=2,
                        yerr=[(pts["accuracy"] - pts["accuracy_lo"]) * 100, (pts["accuracy_hi"] - pts["accuracy"]) * 100])
            curve = Curve(r["fit"], tuple(json.loads(r["fit_params"])), math.log(r["E_min"]), math.log(r["E_max"]))
            x = np.linspace(curve.x_min, curve.x_max, 200)
            ax.plot(np.exp(x), curve(x) * 100, color=color, lw=1.2, label=r["allocation_label"])
            if math.isfinite(r["E"]):
                lo = r["E_lo"] if math.isfinite(r["E_lo"]) else r["E_min"]
                hi = r["E_hi"] if math.isfinite(r["E_hi"]) else r["E_max"]
                ax.errorbar([r["E"]], [r["target"] * 100], xerr=[[r["E"] - lo], [hi - r["E"]]], fmt="D", ms=5,
                            color=color, capsize=3, mec="k", mew=0.5)
        ax.axhline(t["target"].iloc[0] * 100, color="k", ls="--", lw=0.8, label="target")
        log_x(ax)
        aj_axis(ax, photon_energy(results))
        ax.set_xlabel("average energy per MAC (photons)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title if title and len(noises) == 1 else f"{title}, {noise}" if title else noise, fontsize=8)
        ax.legend(frameon=False, fontsize=6, title=f"points: {band_meaning(results).split(': ', 1)[1]}; "
                  "◆: E* [95% CI]", title_fontsize=6)
    return save(fig, stem)
