"""The greedy bit study of a run folder, as a table and a bar chart (``--allocation greedy`` with a bit quantity).

For every greedy point and every kind of bits it lowered (weights, activations), ``greedy.md`` gives

* the start and low bit-widths and the held-out metric with every layer at the start bits;
* every layer's drop when it alone is lowered, least sensitive first (held-out training batches, as the
  method measured it), what was decided for it (ACCEPT / REJECT in the classic study, LOWERED under a
  budget) and its final bits;
* test accuracy of the final configuration against the point's noise-free reference at its start bits
  (every layer high), with the paired 95% bootstrap interval of the difference over the test examples.

``greedy_drops.png`` draws the drops as bars, the lowered layers marked. Everything is read from the run
folder: ``results.csv``, ``allocations/<point_id>.json`` (the method's ``info["greedy"]``) and ``outcomes/``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from noisesim.io import atomic_write
from noisesim.reports.curves import save, style
from noisesim.reports.savings import load_outcomes, read_results
from noisesim.stats import SCORES, interval, replicate_metric, resamples

KIND_NAMES = {"weight": "weight", "act": "activation"}


def greedy_studies(run_dir: Path, n_boot: int = 1000) -> list[dict[str, Any]]:
    """One record per greedy point and kind of bits: its row, the study from its allocation file, the final
    bits per layer and the paired difference against the reference (None where outcomes are missing)."""
    run_dir = Path(run_dir)
    df = read_results(run_dir / "results.csv")
    if df.empty or "allocation" not in df:
        return []
    out = []
    for row in df[df["allocation"] == "greedy"].to_dict("records"):
        try:
            alloc = json.loads((run_dir / "allocations" / f"{row['point_id']}.json").read_text())
        except (OSError, ValueError):
            continue
        for kind, study in alloc.get("info", {}).get("greedy", {}).items():
            final = {n: layer[f"{kind}_bits"] for n, layer in alloc["layers"].items()}
            out.append({"row": row, "kind": kind, **study, "final": final,
                        "difference": _difference(run_dir, row, n_boot)})
    return out


def _difference(run_dir: Path, row: dict, n_boot: int):
    """(accuracy - reference accuracy, lo, hi, examples) paired over the test examples, or None."""
    point, ref = load_outcomes(run_dir, row["point_id"]), load_outcomes(run_dir, str(row.get("clean_id")))
    if point is None or ref is None or point[0].shape[1] != ref[0].shape[1]:
        return None
    (outcomes, targets, name), reference = point, ref[0]
    score = SCORES[name]
    reps = resamples(len(targets), n_boot, seed=0)
    diffs = [replicate_metric(outcomes, targets, r, 1, score) - replicate_metric(reference, targets, r, 0, score)
             for r in reps]
    lo, hi = interval(np.array(diffs))
    return row["accuracy"] - row["clean_accuracy"], lo, hi, outcomes.shape[1]


def _bits(v: Any) -> str:
    v = np.mean(v) if isinstance(v, list) else v
    return "float" if v is None or v != v else f"{v:g}"


def greedy_markdown(studies: list[dict[str, Any]]) -> str:
    lines = []
    for s in studies:
        r = s["row"]
        kind, average = KIND_NAMES[s["kind"]], r[f"avg_{s['kind']}_bits"]
        lines += [f"### {r['model']} on {r['dataset']}: {kind} bits {s['high']} → {s['low_bits']} "
                  f"(point {r['point_id']})", ""]
        lines.append(f"Held-out metric with every layer at {s['high']} bits: {s['base']:.4f}. "
                     f"{len(s['low'])} of {len(s['drops'])} layers lowered to {s['low_bits']} bits; "
                     f"average {kind} bits {average:.3f}.")
        d = s["difference"]
        if d is not None:
            lines.append(f"Test accuracy {r['accuracy']:.2%} [{r['accuracy_lo']:.2%}, {r['accuracy_hi']:.2%}] against "
                         f"{r['clean_accuracy']:.2%} with every layer at the start bits: {d[0] * 100:+.2f} pt "
                         f"[{d[1] * 100:+.2f}, {d[2] * 100:+.2f}] (paired 95% bootstrap over {d[3]} test examples).")
        lines += ["", "| rank | layer | drop alone (held-out) | decision | final bits |", "|---|---|---|---|---|"]
        for i, (name, drop) in enumerate(s["drops"], 1):
            lines.append(f"| {i} | {name} | {drop * 100:+.2f} pt | {s['decisions'].get(name, '—')} | "
                         f"{_bits(s['final'].get(name))} |")
        lines.append("")
    return "\n".join(lines)


def greedy_plot(studies: list[dict[str, Any]], stem: Path) -> list[Path]:
    """Each layer's drop alone as a bar (least sensitive first), the lowered layers in colour."""
    style()
    fig, axes = plt.subplots(len(studies), 1, figsize=(max(6.0, 0.32 * max(len(s["drops"]) for s in studies)),
                                                      3.2 * len(studies)), squeeze=False)
    for ax, s in zip(axes[:, 0], studies):
        names = [n for n, _ in s["drops"]]
        drops = [d * 100 for _, d in s["drops"]]
        low = set(s["low"])
        ax.bar(range(len(names)), drops, color=["tab:green" if n in low else "tab:gray" for n in names])
        ax.set_xticks(range(len(names)), names, rotation=70, ha="right", fontsize=7)
        ax.set_ylabel("drop alone (points)")
        r = s["row"]
        ax.set_title(f"{r['model']} on {r['dataset']}: {KIND_NAMES[s['kind']]} bits {s['high']} → {s['low_bits']} "
                     f"(green: lowered, {len(low)} of {len(names)})", fontsize=9)
    return save(fig, stem)


def write_greedy(run_dir: Path, plots: bool = True) -> list[Path]:
    """``greedy.md`` (and with ``plots`` ``greedy_drops.png`` / ``.pdf``) in the run folder, if it has a greedy
    bit study."""
    run_dir = Path(run_dir)
    studies = greedy_studies(run_dir)
    if not studies:
        return []
    text = greedy_markdown(studies)
    atomic_write(run_dir / "greedy.md", lambda f: f.write(text))
    return [run_dir / "greedy.md"] + (greedy_plot(studies, run_dir / "greedy_drops") if plots else [])
