"""Rounding an allocation to whole units (bits, photons) without leaving its budget.

Largest remainder (Hamilton's method, weighted): every value is floored (to at least ``low``), then,
in order of what rounding took from it, a value gets its unit back while the weighted total stays
within the budget:

    sum_j w_j r_j <= sum_j w_j v_j = W * average,   r_j whole, r_j >= low

When ``low`` lifts small values and the floors overspend, the values that lose least by it (the
smallest remainders first) give a unit back until the budget holds or all are at ``low``.
The result falls short of the budget by less than the largest weight of a value left below v_j + 1.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

_TOLERANCE = 1e-9  # relative: values and budgets within float rounding of a whole unit count as whole


def round_to_budget(values: Sequence[float], weights: Sequence[float], average: float,
                    low: Optional[int] = None) -> list[int]:
    """Whole values (at least ``low``) with the ``weights``-weighted average at most ``average`` (unless ``low``
    alone exceeds it): each floor(v_j) or floor(v_j) + 1, raised in order of the largest remainder
    v_j - floor(v_j), except where values lifted to ``low`` force others below their floor."""
    values, weights = [float(v) for v in values], [float(w) for w in weights]
    if len(values) != len(weights):
        raise ValueError(f"{len(values)} values but {len(weights)} weights")
    if any(w <= 0 for w in weights):
        raise ValueError("every weight must be > 0")
    total = sum(weights)
    out = [math.floor(v + _TOLERANCE) for v in values]
    if low is not None:
        out = [max(low, o) for o in out]
    budget = average * total - sum(o * w for o, w in zip(out, weights)) + _TOLERANCE * average * total
    while budget < 0 and any(low is None or o > low for o in out):  # lifted values overspent: give units back
        for j in sorted(range(len(values)), key=lambda j: values[j] - out[j]):
            if budget < 0 and (low is None or out[j] > low):
                out[j] -= 1
                budget += weights[j]
    for j in sorted(range(len(values)), key=lambda j: out[j] - values[j]):
        if values[j] > out[j] + _TOLERANCE and weights[j] <= budget:
            out[j] += 1
            budget -= weights[j]
    return out
