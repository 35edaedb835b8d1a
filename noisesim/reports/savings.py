"""Savings table: energy saved at iso-accuracy by each allocation against the uniform one.

From the ``search.csv`` rows of ``--binary_search`` runs (least energy reaching the target
accuracy per allocation): one line per model, data set and noise type with E_uniform and, for
each other allocation, E and the saving 1 - E / E_uniform. The search probes target energies;
an allocation may end below its target, so E is the average energy the accepted point actually
spends, read from its row of results.csv (joined on ``point_id``). The accepted target is the
bisection's upper end, within one final bracket (ratio (E_max/E_min)^(1/2^steps)) above the
true iso-accuracy target.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import pandas as pd

from noisesim.io import atomic_write
from noisesim.reports.curves import allocation_order

KEYS = ["model", "dataset", "noise_type"]


def _slug(label: str) -> str:
    return label.replace(" ", "_")


def _saving(e: Optional[float], e_uniform: Optional[float]) -> Optional[float]:
    return None if e is None or e_uniform is None else 1.0 - e / e_uniform


def savings_table(search: pd.DataFrame) -> pd.DataFrame:
    """Wide table: KEYS, target_accuracy, E_uniform and per other allocation E_<label>, saving_<label>
    (labels with underscores; energies in photons/MAC; None where the target was not reached below e_max)."""
    rows = []
    for keys, g in search.groupby(KEYS, sort=False):
        by = {a: r for a, r in zip(g["allocation_label"], g.to_dict("records"))}
        if "uniform" not in by:
            continue
        e_u = _energy(by["uniform"])
        row = dict(zip(KEYS, keys), target_accuracy=by["uniform"]["target_accuracy"], E_uniform=e_u)
        for label in allocation_order(by):
            if label != "uniform":
                row[f"E_{_slug(label)}"] = _energy(by[label])
                row[f"saving_{_slug(label)}"] = _saving(row[f"E_{_slug(label)}"], e_u)
        rows.append(row)
    return pd.DataFrame(rows)


def _energy(row: dict) -> Optional[float]:
    e = row.get("avg_energy", row.get("energy"))
    return None if e is None or e != e else float(e)


def read_searches(run_dirs: Iterable[Path]) -> pd.DataFrame:
    """search.csv of each run with ``avg_energy``: what the accepted point spends on average."""
    frames = []
    for d in map(Path, run_dirs):
        if (d / "search.csv").is_file():
            search = pd.read_csv(d / "search.csv")
            spent = pd.read_csv(d / "results.csv").set_index("point_id")["avg_emac"]
            search["avg_energy"] = search["point_id"].map(spent).where(search["energy"].notna())
            frames.append(search)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def savings_markdown(table: pd.DataFrame) -> str:
    def e(v):
        return "not reached" if v is None or v != v else f"{v:.3g}"

    def s(v):
        return "—" if v is None or v != v else f"{v:.0%}"

    labels = [c[2:] for c in table.columns if c.startswith("E_") and c != "E_uniform"]
    head = " | ".join(f"E {lab.replace('_', ' ')} (saving)" for lab in labels)
    lines = [f"| model | data | noise | target accuracy | E uniform | {head} |",
             "|---|---|---|---|---|" + "---|" * len(labels)]
    for r in table.to_dict("records"):
        cells = [f"{e(r.get(f'E_{lab}'))} ({s(r.get(f'saving_{lab}'))})" for lab in labels]
        lines.append(f"| {r['model']} | {r['dataset']} | {r['noise_type']} | {r['target_accuracy'] * 100:.2f}% | "
                     f"{e(r['E_uniform'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nEnergies in photons/MAC (x 0.128 for aJ/MAC); saving = 1 - E / E_uniform.\n"


def write_savings(search: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``savings.csv`` and ``savings.md`` in ``out_dir`` (nothing when no uniform search is there)."""
    table = savings_table(search) if not search.empty else pd.DataFrame()
    if table.empty:
        return []
    out_dir = Path(out_dir)
    atomic_write(out_dir / "savings.csv", lambda f: table.to_csv(f, index=False))
    text = savings_markdown(table)
    atomic_write(out_dir / "savings.md", lambda f: f.write(text))
    return [out_dir / "savings.md", out_dir / "savings.csv"]
