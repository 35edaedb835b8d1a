"""Closed-form allocation: the energies (or bits) that minimise the second-order loss increase exactly.

Energies. With layer (or channel) j running at E_j photons/MAC, its noise variance is
proportional to 1/E_j, and to second order the loss grows by (``noisesim.allocate.sensitivity``)

    Delta L = 1/2 * sum_j c_j / E_j.

Minimising it under the MAC-weighted budget sum_j M_j E_j = M * E_avg (M_j: the MACs of j,
M = sum_j M_j) with a Lagrange multiplier mu: -c_j / (2 E_j^2) + mu M_j = 0, so
E_j = sqrt(c_j / (2 mu M_j)), and the budget fixes mu:

    E_j = E_avg * M * sqrt(c_j / M_j) / sum_k sqrt(c_k M_k).

The objective is convex in E (c_j / E_j), so this stationary point is the global optimum. Per
channel the same holds channel by channel, with M_j = MACs of the layer / its channels. The
expansion holds for small noise only: a channel whose measured c_j is near 0 (a dead ReLU, or
sampling error) would get almost no energy and noise far outside the quadratic regime. Every E_j
is therefore floored at ``floor`` * E_avg (default 5%; the others rescaled to keep the budget):
on the Fashion-MNIST ResNet-20 at 5 photons/MAC per channel, a floor of 0.1% gives 70% accuracy,
5% gives 83% (uniform: 78%).

Bits. Quantization noise has variance proportional to 4^(-b), so with sensitivity a_j and n_j
weights, minimising sum_j a_j 4^(-b_j) under sum_j n_j b_j = N * b_avg gives reverse
water-filling (Cover & Thomas 2006, ch. 10.3.3):

    b_j = b_avg + 1/2 log2(a_j / n_j) - (sum_k n_k 1/2 log2(a_k / n_k)) / N,

clipped to [b_min, b_max] with the level re-adjusted to the budget (bisection). Whole bits then
minimise the same objective exactly, sum_j a_j 4^(-b_j) over b_j in {2, ..., 8} within the budget (the
integer program of ``noisesim.allocate.integer_program``): rounding the continuous optimum can strand
the budget (8 / 3.95 / 8 bits on layers of 400 / 1600 / 160 weights floor to 8 / 3 / 8, 4.30 bits of 5,
where 7 / 4 / 8 costs a third less). A layer's weight-quantization noise, with step R_l / 2^b over its
weights' range R_l, costs 1/2 tr(H_l) R_l^2 / 12 * 4^(-b) to second order, so a_l = tr(H_l) R_l^2
(tr(H_l) by Hutchinson). Activation bits take the same program with the cost of each layer's input
quantization, a_l / (2^b - 1)^2 over the input elements it weighs (``noisesim.allocate.activation_bits``;
Fisher or Hutchinson by ``sensitivity``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from noisesim.allocate.allocation import Allocation
from noisesim.allocate.activation_bits import act_bits_program
from noisesim.allocate.base import (AllocationJob, AllocationProblem, Allocator, bit_allocation, measure_cost,
                                    weight_layers, QUANTITIES)
from noisesim.allocate.integer_program import choose
from noisesim.allocate.sensitivity import (HutchinsonSettings, cautious_traces, fisher_sensitivity, hessian_sensitivity,
                                           weight_hessian_trace)
from noisesim.registry import ALLOCATORS
from noisesim.settings import setting


@dataclass(frozen=True)
class ClosedFormSettings(HutchinsonSettings):
    sensitivity: str = setting("fisher", "sensitivity estimate of the closed form: fisher (squared gradients) or "
                               "hutchinson (Hessian diagonal by Hutchinson's estimator)", "allocation",
                               choices=lambda: tuple(ESTIMATORS))


ESTIMATORS = {"fisher": fisher_sensitivity, "hutchinson": hessian_sensitivity}
WHOLE_BITS = (2, 8)  # the bit-widths a layer's weights may take


def closed_form_energies(c: Sequence[float], macs: Sequence[float], e_avg: float,
                         floor: float = 0.05) -> list[float]:
    """E_j = max(floor * E_avg, kappa * sqrt(c_j / M_j)), kappa setting the budget sum_j M_j E_j = M E_avg
    exactly (the KKT point of the problem with the floor as a constraint; kappa = E_avg M / sum_k sqrt(c_k M_k)
    when no energy is floored)."""
    if not 0 < floor < 1:
        raise ValueError(f"floor must be in (0, 1) (a fraction of the average energy), got {floor}")
    c = torch.as_tensor(c, dtype=torch.float64).clamp_min(0)
    m = torch.as_tensor(macs, dtype=torch.float64)
    if not bool((m > 0).all()):
        raise ValueError("every layer needs a positive MAC count (run a forward pass first)")
    total = m.sum()
    if float(c.sum()) == 0:
        return [e_avg] * len(c)
    shape, low = torch.sqrt(c / m), floor * e_avg
    fixed = torch.zeros_like(c, dtype=torch.bool)
    while True:  # floor the insensitive, give the rest what remains; kappa only falls, so a floored one stays
        kappa = (e_avg * total - low * m[fixed].sum()) / (shape * m)[~fixed].sum()
        e = torch.where(fixed, torch.full_like(c, low), kappa * shape)
        newly = ~fixed & (e < low)
        if not bool(newly.any()):
            return [float(v) for v in e]
        fixed |= newly


def waterfill_bits(a: Sequence[float], n: Sequence[float], b_avg: float, b_min: float = 2,
                   b_max: float = 8) -> list[float]:
    """Continuous reverse water-filling bits with sum n_j b_j = N b_avg, clipped to [b_min, b_max]."""
    a = torch.as_tensor(a, dtype=torch.float64).clamp_min(1e-30)
    n = torch.as_tensor(n, dtype=torch.float64)
    shape = 0.5 * torch.log2(a / n)
    lo, hi = b_min - float(shape.max()) - 1, b_max - float(shape.min()) + 1
    for _ in range(200):  # the level at which the clipped bits meet the budget
        level = (lo + hi) / 2
        bits = (level + shape).clamp(b_min, b_max)
        if float((bits * n).sum() / n.sum()) > b_avg:
            hi = level
        else:
            lo = level
    return [float(b) for b in (lo + shape).clamp(b_min, b_max)]


@ALLOCATORS.register("closed_form")
class ClosedFormAllocator(Allocator):
    """Energies from the closed form above with Fisher (or Hessian) sensitivities of training batches; bits
    by water-filling on Hutchinson weight traces (``iters`` Rademacher vectors per batch at most, ``tol``)."""

    name = "closed_form"
    quantities = QUANTITIES
    granularities = ("layer", "channel")
    Settings = ClosedFormSettings

    @classmethod
    def from_settings(cls, s: ClosedFormSettings, job: AllocationJob) -> "ClosedFormAllocator":
        allocator = cls(s.sensitivity, s.sensitivity_batches, iters=s.hutchinson_iters, tol=s.hutchinson_tol)
        if job.memo is not None and job.memo_key is not None:
            allocator.memo, allocator.memo_key = job.memo, job.memo_key
        return allocator

    def __init__(self, estimator: str = "fisher", batches: int = 8, floor: float = 0.05, iters: int = 50,
                 tol: float = 0.01):
        if estimator not in ESTIMATORS:
            raise ValueError(f"sensitivity estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
        self.estimator, self.batches, self.floor, self.iters, self.tol = estimator, batches, floor, iters, tol
        self.memo: Optional[dict] = None  # see AllocationJob.memo: sensitivities shared by a sweep's targets
        self.memo_key: Optional[str] = None

    def allocate(self, problem: AllocationProblem) -> Allocation:
        if problem.bit_kinds():
            return self._bits(problem)
        if problem.target_emac is None:
            raise ValueError("the closed form allocates an energy budget: it needs a target energy")
        model = problem.model
        hutchinson = {"iters": self.iters, "tol": self.tol} if self.estimator == "hutchinson" else {}
        key = ("closed_form sensitivity", self.memo_key, self.estimator, self.batches, self.iters, self.tol)
        if self.memo is not None and key in self.memo:  # measured at another target of the sweep
            sens, cost = self.memo[key]
        else:
            with measure_cost(model) as cost:
                sens = ESTIMATORS[self.estimator](model, problem.batches, problem.task, self.batches,
                                                   teacher=problem.teacher, **hutchinson)
            if self.memo is not None:
                self.memo[key] = sens, cost
        alloc = Allocation.from_model(model, self.name, problem.granularity)
        names, c, macs, sizes = [], [], [], []
        for name, values in sens.values.items():
            layer = alloc.layers[name]
            parts = len(layer.energy)  # 1 per layer, or one per output channel
            v = values.reshape(parts, -1).sum(1) if values.numel() % parts == 0 else values.sum().reshape(1)
            names.append(name)
            sizes.append(parts)
            c += v.tolist()
            macs += [layer.macs / parts] * parts
        energies = closed_form_energies(c, macs, problem.target_emac, self.floor)
        start = 0
        for name, k in zip(names, sizes):
            alloc.layers[name].energy = energies[start:start + k]
            start += k
        alloc.apply(model)
        alloc.info.update(alloc_seconds=round(cost.seconds, 3), alloc_forward=sens.forward,  # computed once per sweep
                          alloc_backward=sens.backward, sensitivity=self.estimator)  # with a memo; its cost here
        return alloc


    def _bits(self, problem: AllocationProblem) -> Allocation:
        """Whole bits minimising sum_l a_l 4^(-b_l) within each budget (weights, then activations)."""
        def solve(kind: str, target: float):
            if kind == "weight":
                return self._weight_bits(problem, target)
            return act_bits_program(problem.model, problem.batches, problem.task, target,
                                    range(WHOLE_BITS[0], WHOLE_BITS[1] + 1), self.estimator, self.batches,
                                    problem.teacher, self.iters, self.tol)

        return bit_allocation(problem, self.name, solve)

    def _weight_bits(self, problem: AllocationProblem, target: float):
        """a_l = tr(H_l) R_l^2 from Hutchinson weight traces, then the integer program."""
        model = problem.model
        layers = weight_layers(model)
        trace = weight_hessian_trace(model, problem.batches, problem.task, self.batches, problem.teacher,
                                     self.iters, self.tol)
        names = [n for n in layers if n in trace.values]
        ranges = {n: float((layers[n].weight.max() - layers[n].weight.min()).detach()) for n in names}
        sizes = [layers[n].weight.numel() for n in names]
        safe, replaced = cautious_traces(trace, dict(zip(names, sizes)))
        a = np.array([safe[n] * ranges[n] ** 2 for n in names])
        levels = np.arange(WHOLE_BITS[0], WHOLE_BITS[1] + 1)
        picks = choose(a[:, None] / a.max() * 4.0 ** -levels[None, :], np.outer(sizes, levels), target * sum(sizes))
        return {n: int(levels[k]) for n, k in zip(names, picks)}, trace, replaced
