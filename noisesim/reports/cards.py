"""Quantization cards: every confounder of a run stated next to its accuracies.

"Confounding Tradeoffs for Neural Network Quantization" shows that settings papers rarely
report move accuracy as much as the method itself. A card (``card.md`` + ``card.json``)
lists them for each setting of a run (or of compared runs) — weight granularity, symmetry,
first/last layer precision, observers and calibration size, BN folding, residual
("precision highway") quantization, the baseline checkpoint, the training data and labels,
the evaluation set and seeds — then every recorded setting of the experiment (each field with
its label and unit, from the run's config.json), then every result row with its 95% confidence
interval.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from noisesim.io import atomic_write, write_json

RESULT_COLUMNS = ("noise_type", "allocation_label", "nominal_emac", "avg_emac", "avg_emac_aj", "weight_bits", "act_bits",
                  "avg_weight_bits", "avg_act_bits", "accuracy", "accuracy_lo", "accuracy_hi", "accuracy_ci95",
                  "examples", "draws", "uniform_accuracy_same_energy",
                  "noise_bits_accuracy", "seed", "mc_repeats")


def _get(row: pd.Series, key: str, default: Any = None) -> Any:
    v = row.get(key, default)
    return default if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _flag(v: Any) -> bool:
    return str(v).lower() in ("true", "1")


def _images(batches: Any, batch_size: Any) -> str:
    return f"{int(batches) * int(batch_size)} samples ({int(batches)} batches of {int(batch_size)})"


def confounders(row: pd.Series, seeds: list) -> dict[str, str]:
    """The confounders of one setting, in words, from one of its result rows."""
    ignore = str(_get(row, "ignore", "[]")).strip("[]").replace("'", "")
    first_last = f"{int(_get(row, 'first_last_bits'))} bits" if _get(row, "first_last_bits") is not None else \
        ("float" if ignore else "same as the other layers")
    if ignore and _get(row, "first_last_bits") is None:
        first_last = f"{ignore} layer(s) float, others as configured"
    observers = f"weights {row['weight_observer']}, activations {row['act_observer']}"
    eval_set = "full test set" if _get(row, "eval_batches") is None else \
        f"fixed random subset of {_images(row['eval_batches'], row['val_batch_size'])}"
    subset = _get(row, "train_subset")
    return {
        "model": str(row["model"]),
        "data set": str(row["dataset"]),
        "baseline checkpoint": str(_get(row, "baseline", _get(row, "checkpoint_path", "default"))),
        "float accuracy": f"{row['float_accuracy'] * 100:.2f}%",
        "weight granularity": "per output channel" if _flag(row["weight_per_channel"]) else "per tensor",
        "weight symmetry": "symmetric" if _flag(row["weight_symmetric"]) else "asymmetric",
        "activation symmetry": "symmetric" if _flag(row["act_symmetric"]) else "asymmetric",
        "first / last layer precision": first_last,
        "observers": observers,
        "calibration": _images(row["calibration_batches"], row["train_batch_size"]) + " of training data",
        "BN folding": "folded into the preceding conv" if _flag(row["fold_bn"]) else "not folded",
        "residual adds / concatenations": "quantized" if _flag(row["quantize_residual"])
        else "float (precision highway)",
        "training data": ("all training data" if subset is None else f"seeded random subset of {int(subset)}")
        + (f"; {int(row['train_batches'])} steps of {int(row['train_batch_size'])} at most (trained points)"
           if _get(row, "train_batches") is not None else "; no trained points"),
        "training labels": "generated (float model's top-1)" if _flag(row["generated_labels"]) else "data set labels",
        "evaluation": f"{eval_set}" + (f" ({int(row['examples'])} examples)" if _get(row, "examples") else "")
        + (f", {int(row['mc_repeats'])} noise draw(s) per point" if _get(row, "mc_repeats") is not None
           else ", no noise") + ", 95% bootstrap intervals over examples and draws",
        "seeds": ", ".join(str(int(s)) for s in seeds),
        "instrumented MACs": _coverage(row),
        "code and device": _provenance(row),
    }


def _provenance(row: pd.Series) -> str:
    if _get(row, "noisesim_version") is None:
        return "not recorded"
    commit = _get(row, "git_commit")
    libs = ", ".join(f"{p} {_get(row, f'{p}_version')}" for p in ("torch", "torchvision", "transformers")
                     if _get(row, f"{p}_version") is not None)
    return f"noisesim {row['noisesim_version']}" + (f" ({commit})" if commit else "") + f", {libs}; " \
        f"{_get(row, 'device', 'device not recorded')}"


def _coverage(row: pd.Series) -> str:
    cov = _get(row, "coverage")
    if cov is None:
        return "not measured"
    text = f"{float(cov):.2%} of the MACs torch's FlopCounterMode counts"
    uncovered = _get(row, "uncovered")
    return text + (f"; float: {uncovered}" if uncovered else "")


def recorded_settings(fields: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Every recorded, run-wide field of a run's config.json as label -> value with its unit."""
    out = {}
    for f in sorted(fields.values(), key=lambda f: f.get("order", 0)):
        if f.get("record") and not f.get("sweep"):
            v = f["value"]
            shown = "—" if v is None or v == [] else " ".join(map(str, v)) if isinstance(v, list) else str(v)
            out[f["label"]] = f"{shown} {f['unit']}".strip() if f["unit"] and shown != "—" else shown
    return out


def card(results: pd.DataFrame, fields: Optional[dict[str, dict]] = None) -> dict[str, Any]:
    """The card of some result rows: confounders per setting (``setting`` column, if any), the recorded
    settings of each (``fields``: setting -> the run's config.json fields) and the rows."""
    df = results.copy()
    if "setting" not in df:
        df["setting"] = "this run"
    settings, recorded = {}, {}
    for name, g in df.groupby("setting", sort=False):
        first_valid = g.bfill().iloc[0]  # a setting left empty on some rows (e.g. training on uniform ones)
        settings[str(name)] = confounders(first_valid, sorted(g["seed"].dropna().unique()))
        if fields and fields.get(str(name)):
            recorded[str(name)] = recorded_settings(fields[str(name)])
    cols = ["setting"] + [c for c in RESULT_COLUMNS if c in df]
    rows = df[cols].astype(object).where(df[cols].notna(), None).to_dict("records")
    return {"settings": settings, "recorded": recorded, "results": rows}


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "—"
    if pct:
        return f"{float(v) * 100:.2f}%"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _cells(values) -> str:
    """Table cells: a ``|`` inside a value (a regex in ``overrides``) is escaped so that it stays in its cell."""
    return " | ".join(str(v).replace("|", "\\|") for v in values)


def card_markdown(c: dict[str, Any], title: str) -> str:
    names = list(c["settings"])
    keys = list(next(iter(c["settings"].values())))
    lines = [f"# Quantization card: {title}", "", "## Confounders", "",
             "| | " + _cells(names) + " |", "|---|" + "---|" * len(names)]
    for k in keys:
        lines.append(f"| {k} | " + _cells(c["settings"][n][k] for n in names) + " |")
    if c.get("recorded"):
        runs = list(c["recorded"])
        labels = list(dict.fromkeys(k for n in runs for k in c["recorded"][n]))
        lines += ["", "## Settings", "", "| | " + _cells(runs) + " |", "|---|" + "---|" * len(runs)]
        for k in labels:
            lines.append(f"| {k} | " + _cells(c["recorded"][n].get(k, "—") for n in runs) + " |")
    lines += ["", "## Results", "",
              "Accuracy: mean over the noise draws, [95% bootstrap interval over test examples and noise draws] "
              "(rows written before intervals were bootstrapped: ± the t half-width over draws).", "",
              "| setting | noise | allocation | target E | avg E (photons) | avg E (aJ) | W bits | A bits | "
              "accuracy | uniform at same avg E | equivalent quantizer |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in c["results"]:
        acc = _fmt(r["accuracy"], True)
        if r.get("accuracy_lo") is not None:
            acc += f" [{_fmt(r['accuracy_lo'], True)}, {_fmt(r['accuracy_hi'], True)}]"
        elif r["noise_type"] != "none" and int(r.get("mc_repeats") or 1) > 1:
            acc += f" ± {_fmt(r.get('accuracy_ci95') or 0.0, True)}"
        acc += " (no noise)" if r["noise_type"] == "none" else \
            f" ({int(r['examples'])} × {int(r['draws'])})" if r.get("examples") else ""
        lines.append("| " + _cells([
            r["setting"], r["noise_type"], r["allocation_label"], _fmt(r.get("nominal_emac")),
            _fmt(r.get("avg_emac")), _fmt(r.get("avg_emac_aj")), _fmt(r.get("avg_weight_bits")),
            _fmt(r.get("avg_act_bits")), acc, _fmt(r.get("uniform_accuracy_same_energy"), True),
            _fmt(r.get("noise_bits_accuracy"), True)]) + " |")
    return "\n".join(lines) + "\n"


def write_card(results: pd.DataFrame, out_dir: Path, title: str,
               fields: Optional[dict[str, dict]] = None) -> list[Path]:
    """Write ``card.json`` and ``card.md`` into ``out_dir``."""
    c = card(results, fields)
    out_dir = Path(out_dir)
    write_json(out_dir / "card.json", {"title": title, **c})
    text = card_markdown(c, title)
    atomic_write(out_dir / "card.md", lambda f: f.write(text))
    return [out_dir / "card.md", out_dir / "card.json"]
