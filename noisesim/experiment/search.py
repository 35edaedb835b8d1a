"""Iso-accuracy search: the least energy at which an allocation reaches a target accuracy.

Geometric bisection in E on [e_min, e_max] assuming accuracy rises with energy:
E_mid = sqrt(E_lo * E_hi); keep the half whose ends bracket the target. Every probe is a
sweep point (one row of results.csv, found again under ``--resume``); ``search.csv`` gets one
row per allocation with the id of the accepted point, so the savings table joins on it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Optional

from noisesim.experiment.config import Point
from noisesim.experiment.folder import RunFolder
from noisesim.io import append_csv_row


@dataclass
class SearchResult:
    energy: Optional[float]  # least energy found to reach the target (None: unreachable below e_max)
    accuracy: Optional[float]
    probes: list[tuple[float, float]]


def geometric_bisect(accuracy_at: Callable[[float], float], target: float, e_min: float, e_max: float,
                     steps: int) -> SearchResult:
    probes: list[tuple[float, float]] = []

    def probe(e: float) -> float:
        acc = accuracy_at(e)
        probes.append((e, acc))
        return acc

    hi_acc = probe(e_max)
    if hi_acc < target:
        return SearchResult(None, None, probes)
    lo_acc = probe(e_min)
    if lo_acc >= target:
        return SearchResult(e_min, lo_acc, probes)
    lo, hi = e_min, e_max
    for _ in range(steps):
        mid = math.sqrt(lo * hi)
        acc = probe(mid)
        if acc >= target:
            hi, hi_acc = mid, acc
        else:
            lo = mid
    return SearchResult(hi, hi_acc, probes)


def saving(e_method: Optional[float], e_uniform: Optional[float]) -> Optional[float]:
    """1 - E_method / E_uniform (None when either search failed)."""
    if e_method is None or e_uniform is None:
        return None
    return 1.0 - e_method / e_uniform


def run_search(exp, folder: RunFolder, points: list[Point], writer=None) -> None:
    """Bisect the energy of every allocation of ``points`` to the target accuracy; append to search.csv."""
    cfg = exp.cfg
    reference = exp.float_scores(folder).value if cfg.target_reference == "float" else \
        exp.clean_scores(points[0], folder)[1].value
    target = cfg.target_acc if cfg.target_acc is not None else reference - cfg.acc_drop
    groups = dict.fromkeys(dataclasses.replace(p, e_mac=None, target_emac=None) for p in points if p.noisy)
    found: dict[tuple, Optional[float]] = {}
    done = folder.done()  # read once: under torchrun every process must see the same finished points
    for base in groups:
        ids: dict[float, str] = {}

        def accuracy_at(e: float, base=base) -> float:
            p = dataclasses.replace(base, target_emac=e)
            ids[e] = exp.point_id(p)
            if ids[e] not in done:
                done[ids[e]] = exp.run_point(p, folder, writer, compare_uniform=False)
            return float(done[ids[e]]["accuracy"])

        res = geometric_bisect(accuracy_at, target, cfg.e_min, cfg.e_max, cfg.search_steps)
        key = (base.noise_type, base.weight_bits, base.act_bits, base.seed)
        found[(base.label,) + key] = res.energy
        row = {**dataclasses.asdict(base), "allocation_label": base.label, "model": cfg.model,
               "dataset": cfg.dataset, "target_accuracy": target, "energy": res.energy,
               "energy_aj": None if res.energy is None else res.energy * cfg.photon_energy,
               "point_id": ids.get(res.energy) if res.energy is not None else None,
               "accuracy": res.accuracy, "probes": len(res.probes),
               "saving_vs_uniform": saving(res.energy, found.get(("uniform",) + key))}
        if folder.writable:
            append_csv_row(folder.path / "search.csv", row)
        e_text = "not reached" if res.energy is None else f"{res.energy:.4g} photons/MAC"
        print(f"search {base.noise_type} {base.label}: {e_text} for accuracy >= {target:.4f}"
              + (f", saving {row['saving_vs_uniform']:.1%} vs uniform" if row["saving_vs_uniform"] is not None
                 else ""))
