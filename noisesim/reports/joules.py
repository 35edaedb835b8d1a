"""Where the energy of an inference goes, for runs that model the hardware (tiles or ADCs).

``write_joules(df, run_dir)`` writes ``energy_breakdown.md`` / ``.csv`` (one row per point: allocation,
energy per MAC, accuracy with its 95% interval, joules per inference split into light, ADCs and DACs, the
ADCs' mean bits and clipping rate) and ``accuracy_vs_joules`` (accuracy against joules per inference, and the
shares of each point's joules). Nothing is written for rows without the joule columns.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from noisesim.io import atomic_write
from noisesim.reports.curves import allocation_order, allocation_palette, save, style

PARTS = (("energy_optical_j", "light"), ("energy_adc_j", "ADCs"), ("energy_dac_j", "DACs"))


def breakdown(df: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    """The table's rows, sorted by allocation and energy (``layers``: the points' layer files, for the ADC bits)."""
    rows = df.dropna(subset=["energy_j"]).copy()
    order = allocation_order(rows["allocation_label"])
    rows["order"] = rows["allocation_label"].map({a: i for i, a in enumerate(order)})
    if not layers.empty and "adc_bits" in layers:
        conv = layers.assign(w=layers["conversions"] * layers["adc_bits"]).groupby("point_id")
        rows["mean_adc_bits"] = rows["point_id"].map(conv["w"].sum() / conv["conversions"].sum())
    return rows.sort_values(["noise_type", "order", "nominal_emac"])


def markdown(rows: pd.DataFrame) -> str:
    lines = ["| noise | allocation | target E | E (photons/MAC) | accuracy [95% CI] | J / inference | light | ADCs | "
             "DACs | ADC bits (mean) | ADC clipping |", "|" + "---|" * 11]
    for _, r in rows.iterrows():
        total = r["energy_j"]
        shares = " | ".join(f"{r[c] / total:.1%}" for c, _ in PARTS)
        bits = f"{r['mean_adc_bits']:.2f}" if pd.notna(r.get("mean_adc_bits")) else "—"
        clip = f"{r['adc_clip_rate']:.2%}" if pd.notna(r.get("adc_clip_rate")) else "—"
        lines.append(f"| {r['noise_type']} | {r['allocation_label']} | {r['nominal_emac']:.3g} | {r['avg_emac']:.3g} | "
                     f"{r['accuracy']:.2%} "
                     f"[{r['accuracy_lo']:.2%}, {r['accuracy_hi']:.2%}] | {total:.3g} | {shares} | {bits} | {clip} |")
    n = rows["examples"].iloc[0] if "examples" in rows else "?"
    draws = rows["draws"].iloc[0] if "draws" in rows else "?"
    lines.append("")
    if {"float_accuracy", "clean_accuracy"} <= set(rows) and rows["float_accuracy"].notna().any():
        lines.append(f"On these examples the float network scores {rows['float_accuracy'].iloc[0]:.2%} and the "
                     f"noise-free quantized one, on the same tiles and ADCs, {rows['clean_accuracy'].iloc[0]:.2%}.")
    lines.append(f"{n} evaluation examples, {draws} noise draw(s) per point; intervals: 95% bootstrap over "
                 "examples and draws. Target E: the uniform energy per MAC whose joules (light and ADCs at their "
                 "configured bits) the point spends. Light, ADCs and DACs are shares of the joules per inference.")
    return "\n".join(lines) + "\n"


def write_joules(df: pd.DataFrame, layers: pd.DataFrame, run_dir: Path, plots: bool = True,
                 title: str = "") -> list[Path]:
    if "energy_j" not in df or df["energy_j"].isna().all():
        return []
    rows = breakdown(df, layers)
    run_dir = Path(run_dir)
    md, csv = run_dir / "energy_breakdown.md", run_dir / "energy_breakdown.csv"
    atomic_write(md, lambda f: f.write(markdown(rows)))
    keep = ["point_id", "noise_type", "allocation_label", "avg_emac", "accuracy", "accuracy_lo", "accuracy_hi",
            "energy_j", *(c for c, _ in PARTS), "mean_adc_bits", "adc_clip_rate", "examples", "draws"]
    atomic_write(csv, lambda f: rows[[c for c in keep if c in rows]].to_csv(f, index=False))
    paths = [md, csv]
    if plots:
        paths += _plot(rows, run_dir / "accuracy_vs_joules", title)
    return paths


def _plot(rows: pd.DataFrame, stem: Path, title: str) -> list[Path]:
    style()
    palette = allocation_palette(rows["allocation_label"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.0, 3.2))
    for label, g in rows.groupby("allocation_label", sort=False):
        g = g.sort_values("energy_j")
        left.errorbar(g["energy_j"], g["accuracy"] * 100, yerr=[(g["accuracy"] - g["accuracy_lo"]) * 100,
                                                                (g["accuracy_hi"] - g["accuracy"]) * 100],
                      marker="o", ms=3, lw=1, capsize=2, color=palette[label], label=label)
    left.set_xscale("log")
    left.set_xlabel("energy per inference (J)")
    left.set_ylabel("accuracy (%)")
    left.legend(frameon=False, fontsize=7)
    names = [f"{r['allocation_label']}\nE={r['avg_emac']:.3g}" for _, r in rows.iterrows()]
    bottom = pd.Series(0.0, index=rows.index)
    for col, part in PARTS:
        share = rows[col] / rows["energy_j"] * 100
        right.bar(names, share, bottom=bottom, label=part)
        bottom = bottom + share
    right.set_ylabel("share of the joules (%)")
    right.tick_params(axis="x", labelsize=6, rotation=90)
    right.legend(frameon=False, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    return save(fig, stem)
