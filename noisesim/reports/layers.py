"""Per-layer and per-channel plots of a run: energy per MAC, noise bits and bit-widths by
layer (one curve per allocation), and the signal-to-noise ratio as a histogram and as
violins by layer and by fan-in.

They read the files a run writes next to results.csv: ``layers/<point_id>.csv`` (one row
per layer, see ``noisesim.energy_report``) and ``layers/<point_id>_channels.csv`` (one row
per output channel, see ``noisesim.channel_report``; SNRs need ``--record_snr``).
Energies shown are a few representative targets (lowest, middle, highest) of the sweep.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from noisesim.reports.curves import aj_axis, allocation_palette, save, style

POINT_FIELDS = ("point_id", "noise_type", "allocation_label", "nominal_emac", "weight_bits", "act_bits",
                "target_weight_bits", "target_act_bits", "accuracy")


def load_layers(run_dir: Path, results: pd.DataFrame, channels: bool = False) -> pd.DataFrame:
    """The per-layer (or per-channel) files of every row, tagged with the row's point fields and a
    ``layer`` index (execution order). A point field the file has itself (the bits each layer runs at) keeps the
    file's values; the point's setting is then ``point_<field>``."""
    frames = []
    suffix = "_channels.csv" if channels else ".csv"
    for _, row in results.iterrows():
        path = Path(run_dir) / "layers" / f"{row['point_id']}{suffix}"
        if not path.is_file():
            continue
        df = pd.read_csv(path, dtype={"name": str})  # "0", "4": an nn.Sequential's layers, not numbers
        if df.empty:
            continue
        order = {n: i for i, n in enumerate(dict.fromkeys(df["name"]))}
        df["layer"] = df["name"].map(order)
        for k in POINT_FIELDS:
            if k in row:
                df[f"point_{k}" if k in df.columns else k] = row[k]
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def representative(values: pd.Series, k: int = 3) -> list:
    """Up to k distinct values: lowest, middle(s), highest."""
    v = sorted(values.dropna().unique())
    if len(v) <= k:
        return v
    return [v[int(round(i))] for i in np.linspace(0, len(v) - 1, k)]


ABBREVIATIONS = (("attention.self.", "attn."), ("attention.output.dense", "attn.out"),
                 ("intermediate.dense", "ffn.up"), ("output.dense", "ffn.down"), ("encoder_layer_", ""),
                 ("self_attention", "sa"), ("attention", "attn"), ("encoder", "enc"), ("layers", "L"),
                 ("layer", "L"), ("blocks", "b"), ("block", "b"), ("downsample", "ds"), ("features", "f"),
                 ("_conv", ""), ("classifier", "cls"), ("intermediate", "ffn"))


def short_names(names: list[str], width: int = 24) -> list[str]:
    """Layer paths short enough for tick labels: the dotted prefix all share dropped, common words
    abbreviated, the middle of what is still too long elided."""
    parts = [n.split(".") for n in names]
    common = 0
    while len(names) > 1 and all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    out = []
    for p, name in zip(parts, names):
        text = ".".join(p[common:]).lstrip("_")
        for long, short in ABBREVIATIONS:
            text = text.replace(long, short)
        tokens = [t for t in text.replace("._", ".").split(".") if t]
        text = ".".join(t for i, t in enumerate(tokens) if i == 0 or t != tokens[i - 1]) or name
        out.append(text if len(text) <= width else f"{text[:width // 2 - 1]}…{text[-(width - width // 2):]}")
    return out


def _xticks(ax, layers: pd.DataFrame) -> None:
    """Every layer's shortened name under the axis, at its index (the font shrinks with the layer count)."""
    pairs = layers[["layer", "name"]].drop_duplicates().sort_values("layer")
    n = len(pairs)
    ax.set_xticks(list(pairs["layer"]), short_names(list(pairs["name"])), rotation=90,
                  fontsize=5 if n <= 30 else 4 if n <= 60 else 3)
    ax.set_xlabel("layer")


def _noisy_targets(layers: pd.DataFrame) -> pd.DataFrame:
    df = layers[layers["noise_type"] != "none"]
    return df[df["nominal_emac"].isin(representative(df["nominal_emac"]))]


def by_layer(layers: pd.DataFrame, column: str, ylabel: str, stem: Path, log: bool = False,
             band: Optional[tuple[str, str]] = None, aj: Optional[float] = None, title: str = "") -> list[Path]:
    """``column`` against layer: one panel per (noise type, target energy), one curve per allocation;
    ``band`` = (low, high) columns shaded around each curve (per-channel spread); ``aj``: the photon energy
    of an aJ/MAC axis beside a photons/MAC one."""
    df = _noisy_targets(layers).dropna(subset=[column])
    if df.empty:
        return []
    style()
    panels = list(df.groupby(["noise_type", "nominal_emac"], sort=True))
    n_layers = df["layer"].nunique()
    cols = min(3 if n_layers <= 30 else 1, len(panels))
    rows = -(-len(panels) // cols)
    width = 3.4 if n_layers <= 30 else max(6.0, 0.09 * n_layers)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, 2.9 * rows), squeeze=False, sharey=True)
    palette = allocation_palette(df["allocation_label"])
    for ax, ((noise, target), g) in zip(axes.flat, panels):
        for alloc in palette:
            a = g[g["allocation_label"] == alloc].sort_values("layer")
            if a.empty:
                continue
            ax.plot(a["layer"], a[column], marker="o", ms=3, lw=1, color=palette[alloc], label=alloc)
            if band and alloc.endswith("per channel"):
                ax.fill_between(a["layer"], a[band[0]], a[band[1]], color=palette.get(alloc), alpha=0.2, lw=0)
        ax.set_title(f"{noise}, target E = {target:g} photons/MAC", fontsize=8)
        _xticks(ax, g)
        if log:
            ax.set_yscale("log")
        if aj is not None and ax in axes[:, -1]:
            aj_axis(ax, aj, "y")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    axes.flat[0].legend(frameon=False, fontsize=6, title="shaded: range over output channels" if band else None,
                        title_fontsize=5)
    if title:
        fig.suptitle(title, fontsize=8)
    return save(fig, stem)


def bits_by_layer(layers: pd.DataFrame, stem: Path, max_points: int = 6, title: str = "") -> list[Path]:
    """Weight, activation and (where the layers have ADCs) ADC bits of every layer for up to ``max_points`` rows
    (one curve each)."""
    df = layers.dropna(subset=["act_bits"])
    if df.empty:
        return []
    style()
    ids = list(dict.fromkeys(df["point_id"]))[:max_points]
    panels = [("weight_bits", "weight"), ("act_bits", "activation")]
    if "adc_bits" in df and df["adc_bits"].notna().any():
        panels.append(("adc_bits", "ADC"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.5 * len(panels), 3.0), sharey=True)
    palette = sns.color_palette("deep", 10)
    for i, pid in enumerate(ids):
        g = df[df["point_id"] == pid].sort_values("layer")
        r = g.iloc[0]
        targets = [f"{k} {r[f'target_{n}_bits']:g}" for k, n in (("W", "weight"), ("A", "act"))
                   if pd.notna(r.get(f"target_{n}_bits"))]
        label = f"{r['allocation_label']}, target {' '.join(targets)}" if targets else \
            f"W{r['point_weight_bits']:g}A{r['point_act_bits']:g}"
        if r["noise_type"] != "none":
            label += f", {r['noise_type']} {r['allocation_label']} E={r['nominal_emac']:g}"
        for ax, (col, _) in zip(axes, panels):
            ax.plot(g["layer"], g[col], marker="o", ms=3, lw=1, color=palette[i % 10], label=label)
    for ax, (_, what) in zip(axes, panels):
        ax.set_title(f"{what} bits", fontsize=8)
        _xticks(ax, df[df["point_id"] == ids[0]])
    axes[0].set_ylabel("bits")
    axes[0].legend(frameon=False, fontsize=6)
    if title:
        fig.suptitle(title, fontsize=8)
    return save(fig, stem)


def _snr_frame(channels: pd.DataFrame) -> pd.DataFrame:
    if channels.empty or "snr_db" not in channels:
        return pd.DataFrame()
    df = channels.replace([np.inf, -np.inf], np.nan).dropna(subset=["snr_db"])
    if df.empty:
        return df
    mid = {n: representative(g["nominal_emac"], 3)[len(representative(g["nominal_emac"], 3)) // 2]
           for n, g in df.groupby("noise_type")}
    df = df[df["nominal_emac"] == df["noise_type"].map(mid)].copy()
    df["panel"] = df["noise_type"] + ", E = " + df["nominal_emac"].map("{:g}".format) + " photons/MAC"
    return df


def _legend_on_top(g, title: str) -> None:
    """The allocations' legend in one row above the panels (never over the data), headed by the run's title."""
    sns.move_legend(g, "lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False, title=title or None,
                    fontsize=7, title_fontsize=8)


def snr_plots(channels: pd.DataFrame, stem: Path, title: str = "") -> list[Path]:
    """Per-channel SNR (dB) at the middle target energy of each noise type: a histogram, violins by
    layer (shortened names) and violins by fan-in, one hue per allocation. Writes ``<stem>_histogram``,
    ``<stem>_by_layer`` and ``<stem>_by_fan_in``."""
    df = _snr_frame(channels)
    if df.empty:
        return []
    style()
    paths = []
    palette = allocation_palette(df["allocation_label"])
    hue = dict(hue="allocation_label", hue_order=list(palette), palette=palette)
    g = sns.displot(df, x="snr_db", col="panel", kind="hist", element="step", stat="density", common_norm=False,
                    height=2.8, aspect=1.2, facet_kws={"sharey": False}, **hue)
    g.set_titles("{col_name}", size=8).set_axis_labels("SNR per output channel (dB)", "density")
    _legend_on_top(g, title)
    paths += save(g.figure, stem.with_name(stem.name + "_histogram"))
    pairs = df[["layer", "name"]].drop_duplicates().sort_values("layer")
    for x, name, label in (("layer", "_by_layer", "layer"), ("fan_in", "_by_fan_in", "fan-in D")):
        n = df[x].nunique()
        g = sns.catplot(df, x=x, y="snr_db", row="panel", kind="violin", density_norm="width", cut=0, inner=None,
                        linewidth=0.4, height=2.6, aspect=max(1.5, n / 8), **hue)
        g.set_titles("{row_name}", size=8).set_axis_labels(label, "SNR (dB)")
        for ax in g.axes.flat:
            ax.tick_params(axis="x", labelsize=5 if n <= 30 else 4, rotation=90)
            if x == "layer":  # violins sit at 0, 1, ... in layer order
                ax.set_xticks(range(len(pairs)), short_names(list(pairs["name"])))
        _legend_on_top(g, title)
        paths += save(g.figure, stem.with_name(stem.name + name))
    return paths
