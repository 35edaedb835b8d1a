"""Plots of precision that moves during training (folders written by ``python -m noisesim.experiment.precision``).

``draw_precision(folder)`` draws what the folder's ``results.json`` holds: ``bits_over_training``
(AdaptiveDPC: every layer's weight bits after each epoch; CPT: the bit-width schedule),
``accuracy_by_precision`` (Double Rounding: test accuracy at each bit-width of the one model, with the
separately trained models' accuracies when ``separate`` gives them) and ``pareto`` (supernet
sub-networks: test accuracy against average weight bits), and writes ``results.md``: the result rows with
their 95% intervals over the test examples, the training time and the command.

    python -m noisesim.reports.precision FOLDER [--separate BITS=ACCURACY ...] [--subnets FOLDER]
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

import matplotlib.pyplot as plt
import pandas as pd

from noisesim.io import atomic_write
from noisesim.reports.curves import save, style
from noisesim.reports.layers import short_names
from noisesim.stats import binomial_interval


def _load(folder: Path) -> dict:
    return json.loads((Path(folder) / "results.json").read_text())


def _rows(record: dict) -> pd.DataFrame:
    """A results.json record's result rows, with their intervals."""
    return with_intervals(pd.DataFrame(record.get("results", [])), record.get("test_examples"))


def with_intervals(rows: pd.DataFrame, n: Optional[int]) -> pd.DataFrame:
    """``rows`` with ``test_low`` / ``test_high``: the 95% Wilson interval of each test accuracy over its ``n``
    test examples (kept where the rows already have them)."""
    if rows.empty or not n or "test_low" in rows:
        return rows
    lo_hi = [binomial_interval(a, n) for a in rows["test_accuracy"]]
    return rows.assign(test_low=[lo for lo, _ in lo_hi], test_high=[hi for _, hi in lo_hi])


def _accuracy_line(ax, x: pd.Series, rows: pd.DataFrame, **kw) -> None:
    """Test accuracy (%) against ``x``, with its interval as error bars when the rows carry one."""
    y = rows["test_accuracy"] * 100
    yerr = [y - rows["test_low"] * 100, rows["test_high"] * 100 - y] if "test_low" in rows else None
    ax.errorbar(x, y, yerr=yerr, capsize=2, **kw)


def bits_over_training(record: dict, stem: Path, title: str = "") -> list[Path]:
    epochs = [e for e in record.get("epochs", []) if e.get("bit_widths")]
    schedule = record.get("cpt_schedule")
    if not epochs and not schedule:
        return []
    style()
    panels = int(bool(epochs)) + int(bool(schedule))
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 3.4), squeeze=False)
    ax_iter = iter(axes[0])
    if epochs:
        ax = next(ax_iter)
        names = list(epochs[0]["bit_widths"])
        for e in epochs:
            ax.plot(range(len(names)), [e["bit_widths"][n] for n in names], marker="o", ms=3, lw=1,
                    label=f"epoch {e['epoch']} (avg {e['average_bits']:.2f}, acc {e['accuracy'] * 100:.1f}%)")
        ax.set_xticks(range(len(names)), short_names(names), rotation=90, fontsize=5)
        ax.set_xlabel("layer")
        ax.set_ylabel("weight bits")
        ax.set_title("AdaptiveDPC: weight bits per layer after each epoch", fontsize=8)
        ax.legend(frameon=False, fontsize=6)
    if schedule:
        ax = next(ax_iter)
        ax.plot(range(1, len(schedule) + 1), schedule, lw=1)
        ax.set_xlabel("training step")
        ax.set_ylabel("bits (CPT cap)")
        ax.set_title("cyclic precision schedule", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return save(fig, stem)


def accuracy_by_precision(rows: pd.DataFrame, stem: Path, separate: Optional[dict[int, float]] = None,
                          title: str = "") -> list[Path]:
    if rows.empty or "bits" not in rows or "budget" in rows:
        return []
    style()
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    _accuracy_line(ax, rows["bits"], rows, marker="o", label="one Double-Rounding model, switched")
    if separate:
        b = sorted(separate)
        ax.plot(b, [separate[k] * 100 for k in b], marker="s", ls="--", label="separately trained (QAT), one per bits")
    ax.set_xlabel("weight and activation bits")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xticks(sorted(set(rows["bits"]) | set(separate or {})))
    ax.set_title(title, fontsize=8)
    ax.legend(frameon=False, fontsize=7)
    return save(fig, stem)


def pareto(rows: pd.DataFrame, stem: Path, uniform: Optional[pd.DataFrame] = None, title: str = "") -> list[Path]:
    if rows.empty or "budget" not in rows:
        return []
    style()
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    r = rows.sort_values("average_bits")
    _accuracy_line(ax, r["average_bits"], r, marker="o", label="searched sub-networks (Hessian + ILP)")
    if uniform is not None and not uniform.empty:
        _accuracy_line(ax, uniform["average_bits"], uniform, marker="s", ls="--",
                       label="Double-Rounding model, one bit-width for all (W and A)")
    ax.set_xlabel("average weight bits (weight-count weighted)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=8)
    ax.legend(frameon=False, fontsize=7)
    return save(fig, stem)


def _title(record: dict) -> str:
    """'resnet20 on fashion_mnist · double_rounding · 10,000 test examples' from a folder's results.json."""
    s = record.get("settings", {})
    parts = [f"{s.get('model', '?')} on {s.get('dataset', '?')}", str(s.get("method", ""))]
    if record.get("test_examples"):
        parts.append(f"{record['test_examples']:,} test examples")
    return " · ".join(p for p in parts if p)


def results_table(record: dict, rows: pd.DataFrame) -> str:
    """A folder's results as Markdown: one row per bit-width (Double Rounding), budget (supernet) or the one
    trained model (AdaptiveDPC, CPT), the test accuracy with its 95% Wilson interval, then a note with the method,
    the test examples, the training time, the stored integers' size (Double Rounding) and the command; ``rows`` are
    the record's result rows with their intervals (``_rows``)."""
    s = record.get("settings", {})
    epochs = float(s.get("epochs", 0))
    head = ["budget (avg W bits)"] if "budget" in rows else ["bits"] if "bits" in rows else []
    lines = ["| method | " + " | ".join(head + ["average W bits", "test accuracy [95% CI]"]) + " |",
             "|" + "---|" * (len(head) + 3)]
    for r in rows.to_dict("records"):
        key = [f"{r['budget']:g}"] if "budget" in rows else [str(r["bits"])] if "bits" in rows else []
        acc = f"{r['test_accuracy'] * 100:.2f}%"
        if "test_low" in r:
            acc += f" [{r['test_low'] * 100:.2f}, {r['test_high'] * 100:.2f}]"
        lines.append(f"| {s.get('method', '?')} | " + " | ".join(key + [f"{r['average_bits']:.2f}", acc]) + " |")
    note = [f"{s.get('model', '?')} on {s.get('dataset', '?')}, {record.get('test_examples') or '?'} test examples "
            f"(95% Wilson intervals); {epochs:g} epoch{'' if epochs == 1 else 's'} of training: "
            f"{record.get('seconds', 0):.0f} s; "
            f"float test accuracy {record.get('float_test_accuracy', float('nan')) * 100:.2f}%."]
    if record.get("integers_bytes"):
        note.append(f"Stored integers: {record['integers_bytes'] / 1000:.0f} kB (float32 weights: "
                    f"{record['float32_weight_bytes'] / 1000:.0f} kB).")
    command = record.get("command", "?")
    note.append(f"Command: `{shlex.join(command) if isinstance(command, list) else command}`")
    return "\n".join(lines + ["", " ".join(note)]) + "\n"


def draw_precision(folder: str | Path, separate: Optional[dict[int, float]] = None,
                   uniform: Optional[pd.DataFrame] = None) -> list[Path]:
    """Every plot the folder's results support, and its ``results.md``."""
    folder = Path(folder)
    record = _load(folder)
    rows, title = _rows(record), _title(record)
    atomic_write(folder / "results.md", lambda f: f.write(results_table(record, rows)))
    return (bits_over_training(record, folder / "bits_over_training", title) +
            accuracy_by_precision(rows, folder / "accuracy_by_precision", separate, title) +
            pareto(rows, folder / "pareto", uniform, title))


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m noisesim.reports.precision", description=__doc__.splitlines()[0])
    p.add_argument("folder")
    p.add_argument("--separate", nargs="*", default=[], help="BITS=ACCURACY of separately trained models")
    p.add_argument("--uniform", help="a Double-Rounding folder whose per-bits accuracies to draw on the Pareto plot")
    args = p.parse_args(argv)
    try:
        separate = {int(k): float(v) for k, v in (s.split("=") for s in args.separate)}
        uniform = _rows(_load(Path(args.uniform))) if args.uniform else None
        paths = draw_precision(args.folder, separate, uniform)
        rows = _rows(_load(Path(args.folder)))
    except (OSError, ValueError, KeyError) as e:
        print(f"python -m noisesim.reports.precision: error: {e}", file=sys.stderr)
        return 2
    print(rows.drop(columns=["bits"] if "budget" in rows else []).to_string(index=False))
    print("\n".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
