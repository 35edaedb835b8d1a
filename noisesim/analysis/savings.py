"""Savings table: energy saved at iso-accuracy by trained allocations.

From the ``search.csv`` rows of ``--binary_search`` runs (least energy reaching the target
accuracy per allocation): one line per model, data set and noise type with E_uniform and, for
each trained allocation, E_trained and the saving 1 - E_trained / E_uniform. The search
probes target energies; a trained allocation may end below its target, so E is the average
energy the accepted point actually spends (from results.csv). The accepted target is the
bisection's upper end, within one final bracket (ratio (E_max/E_min)^(1/2^steps)) above the
true iso-accuracy target.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from noisesim.analysis.search import saving
from noisesim.io import atomic_write

KEYS = ["model", "dataset", "noise_type"]


def savings_table(search: pd.DataFrame) -> pd.DataFrame:
    """Wide table: KEYS, target_accuracy, E_uniform and per trained allocation E_<alloc>, saving_<alloc>
    (energies in photons/MAC; None where the target was not reached below e_max)."""
    rows = []
    for keys, g in search.groupby(KEYS, sort=False):
        by = {a: r for a, r in zip(g["allocation"], g.to_dict("records"))}
        if "uniform" not in by:
            continue
        e_u = _energy(by["uniform"])
        row = dict(zip(KEYS, keys), target_accuracy=by["uniform"]["target_accuracy"], E_uniform=e_u)
        for alloc in ("layer", "channel"):
            if alloc in by:
                row[f"E_{alloc}"] = _energy(by[alloc])
                row[f"saving_{alloc}"] = saving(row[f"E_{alloc}"], e_u)
        rows.append(row)
    return pd.DataFrame(rows)


def _energy(row: dict):
    e = row.get("avg_energy", row.get("energy"))
    return None if e is None or e != e else float(e)


def _spent(search: pd.DataFrame, results: pd.DataFrame) -> pd.Series:
    """The average energy of the result row each search settled on (NaN when none was found)."""
    def lookup(r):
        if r["energy"] != r["energy"]:
            return float("nan")
        hit = results[(results["noise_type"] == r["noise_type"]) & (results["allocation"] == r["allocation"])
                      & ((results["target_emac"] - r["energy"]).abs() <= 1e-6 * r["energy"])]
        return float(hit["avg_emac"].iloc[-1]) if len(hit) else float(r["energy"])
    return search.apply(lookup, axis=1)


def read_searches(run_dirs: Iterable[Path]) -> pd.DataFrame:
    """search.csv of each run with ``avg_energy``: what the accepted point spends on average."""
    frames = []
    for d in map(Path, run_dirs):
        if (d / "search.csv").is_file():
            search = pd.read_csv(d / "search.csv")
            search["avg_energy"] = _spent(search, pd.read_csv(d / "results.csv"))
            frames.append(search)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def savings_markdown(table: pd.DataFrame) -> str:
    def e(v):
        return "not reached" if v is None or v != v else f"{v:.3g}"

    def s(v):
        return "—" if v is None or v != v else f"{v:.0%}"

    lines = ["| model | data | noise | target accuracy | E uniform | E per layer (saving) | E per channel (saving) |",
             "|---|---|---|---|---|---|---|"]
    for r in table.to_dict("records"):
        cells = [f"{e(r.get(f'E_{a}'))} ({s(r.get(f'saving_{a}'))})" if f"E_{a}" in r else "—"
                 for a in ("layer", "channel")]
        lines.append(f"| {r['model']} | {r['dataset']} | {r['noise_type']} | {r['target_accuracy'] * 100:.2f}% | "
                     f"{e(r['E_uniform'])} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n\nEnergies in photons/MAC (x 0.128 for aJ/MAC); saving = 1 - E_trained / E_uniform.\n"


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
