"""Iso-accuracy search: the least energy at which an allocation reaches a target accuracy.

Geometric bisection in E on [e_min, e_max] assuming accuracy rises with energy:
E_mid = sqrt(E_lo * E_hi); keep the half whose ends bracket the target. The saving of a
trained allocation over the uniform one is 1 - E_trained / E_uniform.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional


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


def saving(e_trained: Optional[float], e_uniform: Optional[float]) -> Optional[float]:
    """1 - E_trained / E_uniform (None when either search failed)."""
    if e_trained is None or e_uniform is None:
        return None
    return 1.0 - e_trained / e_uniform
