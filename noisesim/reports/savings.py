"""Savings table: energy saved at iso-accuracy by each allocation against the uniform one, with intervals.

For every model, data set, noise type and quantization setting of a run, each allocation's
points (average energy actually spent, per-example outcomes of every noise draw) form an
accuracy-vs-energy curve; a monotone fit of it is solved for the energy E* that reaches the
target accuracy, and 1 - E*_method / E*_uniform is the saving (``noisesim.stats.isoaccuracy``).
Intervals are 95% bootstrap percentiles over test examples (resampled once for all curves and
for the reference model that sets the target) and noise draws. A saving whose interval contains
0 is marked "not significant". The target is ``--target_acc``, or the reference accuracy (the
float model's, or the noise-free quantized model's: ``--target_reference``) minus ``--acc_drop``.
The points may come from a sweep grid or from the probes of a bisection (``--binary_search``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from noisesim.io import atomic_write
from noisesim.reports.curves import allocation_order
from noisesim.stats import (SCORES, Evaluation, IsoEnergy, interval, iso_energy, metric, replicate_metric, resamples,
                            saving, significant)

GROUP = ["model", "dataset", "noise_type", "clean_id"]
MIN_SIGMOID_POINTS = 4  # a four-parameter curve; fewer points fall back to the isotonic fit


def load_outcomes(run_dir: Path, name: str) -> Optional[tuple[np.ndarray, np.ndarray, str]]:
    """(outcomes (draws, examples), targets, metric) of ``outcomes/<name>.npz``, or None if absent."""
    path = Path(run_dir) / "outcomes" / f"{name}.npz"
    if not path.is_file():
        return None
    with np.load(path) as z:
        return z["outcomes"].astype(np.float32), z["targets"], str(z["metric"])


def target_settings(run_dir: Path, overrides: Optional[dict[str, Any]] = None) -> Optional[dict[str, Any]]:
    """The run's iso-accuracy target settings, with ``overrides`` on top (None when no target is set)."""
    try:
        fields = json.loads((Path(run_dir) / "config.json").read_text())["fields"]
    except (OSError, ValueError, KeyError):
        fields = {}
    values = {k: fields[k]["value"] for k in ("target_acc", "acc_drop", "target_reference", "curve_fit", "bootstrap")
              if k in fields}
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "acc_drop" in given:  # a new target replaces the run's, whichever form that had
        values.pop("target_acc", None)
    if "target_acc" in given:
        values.pop("acc_drop", None)
    values.update(given)
    if values.get("target_acc") is None and values.get("acc_drop") is None:
        return None
    return values


def _curves(g: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The group's rows per curve: one per allocation label (and lambda / learning rate where several)."""
    keys = ["allocation_label"] + [k for k in ("lambd", "lr") if k in g and g[k].nunique(dropna=True) > 1]
    curves = {}
    for values, rows in g.groupby(keys, sort=False, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        extra = ", ".join(f"{k}={v:g}" for k, v in zip(keys[1:], values[1:]) if v == v)
        curves[values[0] + (f" ({extra})" if extra else "")] = rows
    return curves


def read_results(path: Path) -> pd.DataFrame:
    """A run's results.csv as one consolidated frame: pandas 3 reads each of its ~130 columns into a
    block of its own, and every column a report adds would then warn of a fragmented frame. Adds
    ``nominal_emac``: a point's energy per MAC as swept, its ``target_emac`` or a uniform sweep's ``e_mac``."""
    df = pd.read_csv(path).copy()
    energies = [df[c] for c in ("target_emac", "e_mac") if c in df]
    if energies:
        df["nominal_emac"] = energies[0].fillna(energies[1]) if len(energies) == 2 else energies[0]
    return df.copy()


def iso_rows(run_dir: Path, overrides: Optional[dict[str, Any]] = None) -> list[dict[str, Any]]:
    """One row per curve of a run: E* with its interval and, against uniform, the saving with its interval."""
    run_dir = Path(run_dir)
    settings = target_settings(run_dir, overrides)
    results_csv = run_dir / "results.csv"
    if settings is None or not results_csv.is_file():
        return []
    df = read_results(results_csv)
    if "clean_id" not in df:
        return []
    df = df[(df["noise_type"] != "none") & df["avg_emac"].notna()]
    out = []
    for keys, g in df.groupby(GROUP, sort=False):
        out += _group_rows(run_dir, dict(zip(GROUP, keys)), g, settings)
    return out


def _group_rows(run_dir: Path, keys: dict, g: pd.DataFrame, settings: dict) -> list[dict[str, Any]]:
    ref_name = "float" if settings.get("target_reference", "float") == "float" else keys["clean_id"]
    ref = load_outcomes(run_dir, ref_name)
    if ref is None:
        return []
    targets, score = ref[1], SCORES[ref[2]]
    reps = resamples(ref[0].shape[1], int(settings.get("bootstrap") or 1000), seed=0)
    drop, fixed = settings.get("acc_drop"), settings.get("target_acc")
    ref_value = metric(ref[0], targets, score)

    def target(r):
        if fixed is not None:
            return fixed
        return (ref_value if r is None else replicate_metric(ref[0], targets, r, 999_999, score)) - drop

    found: dict[str, IsoEnergy] = {}
    rows = []
    curves = _curves(g)
    for i, label in enumerate(allocation_order(curves)):
        rows_c = curves[label]
        points = []
        for pid, e in zip(rows_c["point_id"], rows_c["avg_emac"]):
            o = load_outcomes(run_dir, pid)
            if o is not None:
                points.append(Evaluation(float(e), o[0]))
        if len({p.energy for p in points}) < 2:
            continue
        kind = settings.get("curve_fit", "isotonic")
        if kind != "isotonic" and len(points) < MIN_SIGMOID_POINTS:
            kind = "isotonic"
        iso = iso_energy(points, targets, target, reps, salt=i + 1, kind=kind, score=score)
        found[label] = iso
        first = rows_c.iloc[0]
        row = {**keys, "weight_bits": first.get("weight_bits"), "act_bits": first.get("act_bits"),
               "allocation_label": label, "target": target(None),
               "target_text": f"{fixed:.2%}" if fixed is not None else
               f"{'float' if ref_name == 'float' else 'quantized, no noise'} {ref_value:.2%} − {drop * 100:g} pt",
               "examples": int(ref[0].shape[1]), "draws": int(first.get("draws", 1)), "points": len(points),
               "fit": kind, "fit_rms": iso.curve.rms, "fit_params": _params(iso.curve), "E": iso.energy, "E_lo": iso.lo, "E_hi": iso.hi,
               "E_min": min(p.energy for p in points), "E_max": max(p.energy for p in points), "iso": iso,
               **_compute(rows_c)}
        rows.append(row)
    if "uniform" in found:
        for row in rows:
            if row["allocation_label"] != "uniform":
                row["saving"], row["saving_lo"], row["saving_hi"] = saving(found[row["allocation_label"]],
                                                                           found["uniform"])
    return rows


def _compute(rows: pd.DataFrame) -> dict[str, float]:
    """What the allocation cost per point, averaged over the curve: seconds and forward / backward passes."""
    cols = ("alloc_seconds", "alloc_forward", "alloc_backward")
    return {c: float(rows[c].mean()) if c in rows and rows[c].notna().any() else math.nan for c in cols}


def _compute_text(row: dict) -> str:
    if math.isnan(row.get("alloc_seconds", math.nan)):  # a run from before the costs were recorded
        return "—"
    return f"{row['alloc_seconds']:.0f} s, {row['alloc_forward']:.0f} + {row['alloc_backward']:.0f}"


def _params(curve) -> str:
    """The fitted curve as JSON: a sigmoid's (a, b, m, s) or isotonic ([x], [y]), x = log E."""
    return json.dumps([np.asarray(p).tolist() for p in curve.params])


def _energy(v: float, row: dict) -> str:
    if v == math.inf:
        return f"> {row['E_max']:.3g}"
    if v == -math.inf:
        return f"< {row['E_min']:.3g}"
    return "—" if v != v else f"{v:.3g}"


def _percent(v: float) -> str:
    """A saving in whole percent; under half a percent with one decimal, so that its sign shows."""
    if v == -math.inf:
        return "−∞"
    if v != v:
        return "?"
    return f"{v:.1%}" if 0 < abs(v) < 0.005 else f"{round(v * 100) + 0:d}%"  # + 0: no "-0%"


def _saving(row: dict) -> str:
    if row["allocation_label"] == "uniform":
        return "(reference)"
    s, lo, hi = row.get("saving"), row.get("saving_lo"), row.get("saving_hi")
    if s is None:
        return "—"
    if s != s:
        return "— (a target outside the evaluated energies: widen the grid)"
    return _saving_text(s, lo, hi)


def _saving_text(s: float, lo: float, hi: float) -> str:
    """'24% [7%, 43%]', marked 'not significant' when the interval holds 0."""
    text = f"{_percent(s)} [{_percent(lo)}, {_percent(hi)}]"
    return text if significant(lo, hi) else text + " not significant"


def _versus_first(row: dict, first: str) -> str:
    s, lo, hi = row.get("saving_vs_first"), row.get("saving_vs_first_lo"), row.get("saving_vs_first_hi")
    if row["run"] == first:
        return "(reference)"
    return "—" if lo is None or lo != lo else _saving_text(s, lo, hi)


def savings_markdown(table: pd.DataFrame) -> str:
    runs = "run" in table and table["run"].nunique() > 1
    first = table["run"].iloc[0] if runs else None
    versus = runs and "saving_vs_first" in table and table["saving_vs_first_lo"].notna().any()
    head = ["model", "data", "noise", "W/A bits", "target", "examples × draws", "allocation", "points (fit)",
            "E* photons/MAC [95% CI]", "saving vs uniform [95% CI]", "allocation cost per point (fwd + bwd)"]
    if runs:
        head = ["run"] + head + ([f"saving vs {first} [95% CI]"] if versus else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table.to_dict("records"):
        bits = f"{_bits(r['weight_bits'])}/{_bits(r['act_bits'])}"
        e = f"{_energy(r['E'], r)} [{_energy(r['E_lo'], r)}, {_energy(r['E_hi'], r)}]"
        cells = [r["model"], r["dataset"], r["noise_type"], bits, f"{r['target_text']} ({r['target']:.2%})",
                 f"{r['examples']} × {r['draws']}", r["allocation_label"],
                 f"{r['points']} ({r['fit']}, rms {r['fit_rms'] * 100:.2f} pt)", e, _saving(r), _compute_text(r)]
        if runs:
            cells = [r["run"]] + cells + ([_versus_first(r, first)] if versus else [])
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + (
        "\n\nE*: the least average energy per MAC (photons; x 0.128 for aJ) at which the fitted accuracy curve "
        "reaches the target; '> E' not reached up to the highest energy evaluated, '< E' reached already at the "
        "lowest. Intervals: 95% bootstrap over test examples and noise draws; saving = 1 - E*/E*_uniform. "
        "Allocation cost: the mean over the curve's points of the wall seconds and forward + backward passes "
        "that computing one allocation took.\n")


def _bits(b: Any) -> str:
    return "float" if b is None or b != b else f"{int(b)}"


def _budget(r: dict[str, Any]) -> str:
    return ", ".join(f"{kind} {r[f'target_{name}_bits']:g}" for kind, name in (("W", "weight"), ("A", "act"))
                     if pd.notna(r.get(f"target_{name}_bits")))


def budget_rows(run_dir: Path, n_boot: int = 1000) -> list[dict[str, Any]]:
    """Bit-width allocations at equal budgets: every method's accuracy and, against the uniform allocation
    at the same budget, the paired bootstrap difference (runs with ``--quantity weight_bits``, ``act_bits`` or
    ``weights_and_act_bits``)."""
    run_dir = Path(run_dir)
    if not (run_dir / "results.csv").is_file():
        return []
    df = read_results(run_dir / "results.csv")
    if "quantity" not in df or not (df["quantity"] != "energy").any():
        return []
    df = df[df["quantity"] != "energy"]
    for column in ("target_weight_bits", "target_act_bits", "avg_act_bits"):
        if column not in df:
            df = df.assign(**{column: np.nan})
    out = []
    keys = ["model", "dataset", "quantity", "target_weight_bits", "target_act_bits"]
    for _, g in df.groupby(keys, sort=True, dropna=False):
        loaded = {r["allocation_label"]: (r, load_outcomes(run_dir, r["point_id"])) for r in g.to_dict("records")}
        loaded = {k: v for k, v in loaded.items() if v[1] is not None}
        if not loaded:
            continue
        targets, score = next(iter(loaded.values()))[1][1], SCORES[next(iter(loaded.values()))[1][2]]
        reps = resamples(len(targets), n_boot, seed=0)
        uniform = loaded.get("uniform")
        for i, label in enumerate(allocation_order(loaded)):
            r, (outcomes, _, _) = loaded[label]
            row = {"model": r["model"], "dataset": r["dataset"], "budget": _budget(r), "allocation_label": label,
                   "avg_weight_bits": r["avg_weight_bits"], "avg_act_bits": r["avg_act_bits"],
                   "accuracy": r["accuracy"], "accuracy_lo": r["accuracy_lo"],
                   "accuracy_hi": r["accuracy_hi"], "examples": outcomes.shape[1], "draws": outcomes.shape[0],
                   "alloc_seconds": r.get("alloc_seconds"), "alloc_forward": r.get("alloc_forward"),
                   "alloc_backward": r.get("alloc_backward")}
            if uniform is not None and label != "uniform":
                diffs = [replicate_metric(outcomes, targets, rep, i + 1, score)
                         - replicate_metric(uniform[1][0], targets, rep, 0, score) for rep in reps]
                row["difference"] = r["accuracy"] - uniform[0]["accuracy"]
                row["difference_lo"], row["difference_hi"] = interval(np.array(diffs))
            out.append(row)
    return out


def _avg_bits(v: Any) -> str:
    return "float" if v is None or v != v else f"{v:.3f}"


def budget_markdown(table: pd.DataFrame) -> str:
    lines = ["| model | data | budget (avg bits) | allocation | avg W / A bits | accuracy [95% CI] | examples × draws | "
             "vs uniform [95% CI] | wall s | forward / backward passes |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.to_dict("records"):
        diff = "—" if r.get("difference") is None or r.get("difference") != r.get("difference") else (
            f"{r['difference'] * 100:+.2f} pt [{r['difference_lo'] * 100:+.2f}, {r['difference_hi'] * 100:+.2f}]"
            + ("" if r["difference_lo"] > 0 or r["difference_hi"] < 0 else " not significant"))
        lines.append(f"| {r['model']} | {r['dataset']} | {r['budget']} | {r['allocation_label']} | "
                     f"{_avg_bits(r['avg_weight_bits'])} / {_avg_bits(r['avg_act_bits'])} | "
                     f"{r['accuracy']:.2%} [{r['accuracy_lo']:.2%}, {r['accuracy_hi']:.2%}]"
                     f" | {r['examples']} × {r['draws']} | {diff} | {r['alloc_seconds']:.1f} | "
                     f"{int(r['alloc_forward'])} / {int(r['alloc_backward'])} |")
    return "\n".join(lines) + ("\n\nBudget: the average weight (W, weighted by weight counts) and activation (A, "
                               "weighted by input elements) bits. Intervals: 95% bootstrap over test examples "
                               "(paired between methods).\n")


def _iso_rows_of_runs(run_dirs: list[Path], labels: Sequence[str], overrides: Optional[dict[str, Any]]
                     ) -> list[dict[str, Any]]:
    """Every run's iso rows, labelled with its run; with several runs, each curve's saving against the same
    curve (model, data, noise, bits, allocation) of the first run, paired over the same test examples."""
    rows = [{**r, "run": label} for d, label in zip(run_dirs, labels) for r in iso_rows(d, overrides)]
    key = ("model", "dataset", "noise_type", "weight_bits", "act_bits", "allocation_label")
    first = {tuple(str(r.get(k)) for k in key): r for r in rows if r["run"] == labels[0]}
    for r in rows:
        ref = first.get(tuple(str(r.get(k)) for k in key))
        if len(run_dirs) > 1 and ref is not None and r["run"] != labels[0] and ref["examples"] == r["examples"]:
            r["saving_vs_first"], r["saving_vs_first_lo"], r["saving_vs_first_hi"] = saving(r["iso"], ref["iso"])
    return [{k: v for k, v in r.items() if k != "iso"} for r in rows]


def write_savings(run_dirs: Iterable[Path], out_dir: Path, overrides: Optional[dict[str, Any]] = None,
                  labels: Optional[Sequence[str]] = None) -> list[Path]:
    """``savings.csv`` / ``savings.md`` (iso-accuracy energies; runs that asked for a target, or ``overrides``
    such as {"acc_drop": 0.01, "curve_fit": "isotonic"}) and ``budgets.csv`` / ``budgets.md`` (bit-width
    methods at equal budgets) in ``out_dir``. ``labels`` name the runs (default: their folder names); with
    several runs the savings table also gives each curve's saving against the first run's."""
    run_dirs = [Path(d) for d in run_dirs]
    labels = list(labels) if labels is not None else [d.name for d in run_dirs]
    out_dir = Path(out_dir)
    paths = []
    for rows, name, render in ((_iso_rows_of_runs(run_dirs, labels, overrides), "savings", savings_markdown),
                               ([r for d in run_dirs for r in budget_rows(d)], "budgets", budget_markdown)):
        if not rows:
            continue
        table = pd.DataFrame(rows)
        text = render(table)
        atomic_write(out_dir / f"{name}.csv", lambda f, t=table: t.to_csv(f, index=False))
        atomic_write(out_dir / f"{name}.md", lambda f, x=text: f.write(x))
        paths += [out_dir / f"{name}.md", out_dir / f"{name}.csv"]
    return paths
