"""``points.md``: one line per point of a run, what it asked for and what it got.

Columns: allocation, target energy, the average energy the model ran at, the metric with its 95%
bootstrap interval (over test examples and noise draws), and the training steps of trained points;
the noise model, the bit-widths and the average weight bits join them when the run varies them.
Rows are grouped by setting and allocation (uniform first) and sorted by target.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from noisesim.io import atomic_write

def _varies(df: pd.DataFrame, column: str) -> bool:
    return column in df and df[column].astype(str).nunique() > 1


def _energy(v) -> str:
    return "" if v is None or v != v else f"{v:.3g}"


def points_markdown(df: pd.DataFrame) -> str:
    """The table of the module docstring for the rows of one results.csv."""
    metric = df["metric"].iloc[0] if "metric" in df else "accuracy"
    keys = [c for c in ("noise_type", "weight_bits", "act_bits") if _varies(df, c)]
    bits = "quantity" in df and (df["quantity"] == "weight_bits").any()
    head = {"noise_type": "noise", "weight_bits": "W bits", "act_bits": "A bits"}
    columns = ["allocation"] + [head[k] for k in keys] + (
        ["target W bits", "avg W bits"] if bits else ["target E", "avg E (photons/MAC)"]) + [
        f"{metric} [95% CI]", "steps"]
    order = df.assign(_u=df["allocation_label"] != "uniform", _t=df["target_weight_bits" if bits else "nominal_emac"])
    order = order.sort_values(keys + ["_u", "allocation_label", "_t"], kind="stable")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in order.to_dict("records"):
        budget = [f"{r['target_weight_bits']:g}", f"{r['avg_weight_bits']:.3f}"] if bits else [
            _energy(r.get("nominal_emac")), _energy(r.get("avg_emac"))]
        steps = r.get("steps")
        cells = [r["allocation_label"]] + [str(r[k]) for k in keys] + budget + [
            f"{r['accuracy']:.2%} [{r['accuracy_lo'] * 100:.2f}, {r['accuracy_hi'] * 100:.2f}]",
            "" if steps is None or steps != steps else f"{int(steps)}"]
        lines.append("| " + " | ".join(cells) + " |")
    examples = "–".join(str(int(v)) for v in sorted({df["examples"].min(), df["examples"].max()}))
    draws = "–".join(str(int(v)) for v in sorted({df["draws"].min(), df["draws"].max()}))
    return "\n".join(lines) + f"\n\n{examples} test examples, {draws} noise draw(s) per point.\n"


def write_points(df: pd.DataFrame, run_dir: Path) -> list[Path]:
    path = Path(run_dir) / "points.md"
    text = points_markdown(df)
    atomic_write(path, lambda f: f.write(text))
    return [path]
