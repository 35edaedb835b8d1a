"""Sub-networks of a one-shot multi-precision supernet under bit budgets (HAWQ-V3's integer program).

For a ``MultiPrecision`` supernet (``noisesim.precision.double_rounding``), layer l at bits b costs

    Omega_l(b) = tr(H_l) / n_l * ||Q_b(W_l) - W_l||^2,

with tr(H_l) the Hessian trace of the loss with respect to the layer's weights (Hutchinson's estimator)
and Q_b the double-rounded weights; the per-layer bits minimising sum_l Omega_l subject to the average
weight bits (weight-count weighted) staying within the budget are found exactly with SciPy's ``milp``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from noisesim.allocate.integer_program import choose
from noisesim.allocate.sensitivity import cautious_traces, weight_hessian_trace
from noisesim.precision.double_rounding import MultiPrecision, accuracy_at
from noisesim.settings import ConfigError, positive, setting


@dataclass(frozen=True)
class SupernetSettings:
    """The command-line settings of the supernet search (``main.py precision --method supernet``)."""

    budgets: tuple = setting((3.0, 4.0, 5.0, 6.0, 7.0), "supernet: average weight-bit budgets to search",
                             "precision schedules", unit="bits", check=positive)

    def __post_init__(self):
        if not self.budgets:
            raise ConfigError("--budgets: give at least one average bit budget", "budgets")


def search_subnets(mp: MultiPrecision, train_batches: Iterable, val_batches: Iterable, task: Any,
                   budgets: Sequence[float], max_batches: int = 2) -> list[dict[str, Any]]:
    """Per average-bits budget: the per-layer bits minimising Σ_l tr(H_l)/n_l ||Q_b(W_l) - W_l||² (exact integer
    program) and that sub-network's accuracy on ``val_batches``."""
    mp.set_bit_width(mp.top)
    trace = weight_hessian_trace(mp.model, train_batches, task, max_batches)
    names = list(mp.layers)
    safe, _ = cautious_traces(trace, {n: mp.layers[n].weight.numel() for n in names})
    costs, sizes = [], []
    with torch.no_grad():
        for name in names:
            m = mp.layers[name]
            w, q = m.weight.detach(), m.weight_quant
            n = w.numel()
            t = safe[name]
            row = []
            for b in mp.bits:
                wq = q.integers(w, b) * (q._step(w.dim()) * 2 ** (mp.top - b))
                row.append(t / n * float((wq - w).pow(2).sum()))
            costs.append(row)
            sizes.append(n)
    costs, sizes = np.array(costs), np.array(sizes, float)
    results = []
    for budget in budgets:
        picks = choose(costs, sizes[:, None] * np.array(mp.bits)[None, :], budget * sizes.sum())
        choice = {name: int(mp.bits[i]) for name, i in zip(names, picks)}
        results.append({"budget": budget, "average_bits": mp.average_bits(choice), "bits": choice,
                        "accuracy": accuracy_at(mp, choice, val_batches, task)})
    mp.set_bit_width(mp.top)
    return results
