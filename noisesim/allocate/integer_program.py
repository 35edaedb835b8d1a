"""Hessian-guided allocation with an integer program (HAWQ-V3, Yao et al. 2021), for energies and for bits.

Each layer l picks one candidate k — an energy per MAC E_k, or a weight bit-width b_k — whose
perturbation costs Omega_l(k) and spends w_l(k) of a budget:

    energies: Omega_l(E) = 1/2 c_l / E    (c_l = sum_i H_ii s_i^2, Hutchinson on the layer's noise)
              w_l(E)     = M_l E          (MACs times energy), budget M * E_avg
    bits:     Omega_l(b) = tr(H_l) / n_l * ||Q_b(W_l) - W_l||^2      (HAWQ-V2/V3)
              w_l(b)     = n_l b          (model size in bits), budget N * b_avg
    act bits: Omega_l(b) = a_l / (2^b - 1)^2  (input-Hessian trace times the step's variance,
                                               ``noisesim.allocate.activation_bits``, by Hutchinson)
              w_l(b)     = n_l b          (n_l: input elements per sample), budget N * b_avg

    minimise sum_l sum_k Omega_l(k) x_lk   s.t.  sum_k x_lk = 1,  sum_l sum_k w_l(k) x_lk <= budget,  x binary,

solved exactly by SciPy's ``milp`` (HiGHS branch and bound). For energies the chosen levels are
then rescaled by one common factor to spend the budget exactly (the candidates are a grid). A layer
whose c_l or tr(H_l) estimate is not positive is costed as the most sensitive measured layer per MAC
or per weight (``cautious_traces``), not as free.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from noisesim.allocate.allocation import Allocation
from noisesim.allocate.activation_bits import act_bits_program
from noisesim.allocate.base import (AllocationJob, AllocationProblem, Allocator, bit_allocation, measure_cost,
                                    QUANTITIES)
from noisesim.allocate.sensitivity import HutchinsonSettings, cautious_traces, hessian_sensitivity, weight_hessian_trace
from noisesim.nn.prepare import sim_layers
from noisesim.quant.functional import fake_quant_ste, qparams
from noisesim.registry import ALLOCATORS

ENERGY_STEPS = tuple(2.0 ** k for k in range(-4, 5))  # candidates: E_avg / 16 ... 16 E_avg
BIT_CANDIDATES = (2, 3, 4, 5, 6, 8)


def choose(costs: np.ndarray, weights: np.ndarray, budget: float) -> list[int]:
    """The candidate per row minimising sum costs[l, k] subject to sum weights[l, k] <= budget (exact MILP).

    One row's candidates differ by a constant only through their row minimum, so each row is shifted
    to start at 0 and all are scaled so that the smallest positive difference is 1 (or the largest is
    1e6, whichever is smaller; larger costs make HiGHS unstable): HiGHS stops at an
    absolute gap of 1e-6, which costs of 1e-8 (layers of small trace) would otherwise fall under, and
    the relative gap is set to 0. The budget constraint is divided by the budget, since HiGHS's feasibility
    tolerance is absolute.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp  # SciPy loads when a program is solved

    costs, weights = np.asarray(costs, float), np.asarray(weights, float)
    layers, k = costs.shape
    shifted = costs - costs.min(1, keepdims=True)
    positive = shifted[shifted > 0]
    scaled = shifted / max(positive.min(), positive.max() * 1e-6) if positive.size else shifted
    one_each = np.kron(np.eye(layers), np.ones(k))
    unit = abs(budget) or 1.0  # the budget as 1: HiGHS's feasibility tolerance is absolute (1e-7; budgets in J are less)
    constraints = [LinearConstraint(one_each, 1, 1), LinearConstraint(weights.reshape(1, -1) / unit, -np.inf,
                                                                       budget / unit)]
    res = milp(scaled.reshape(-1), constraints=constraints, integrality=np.ones(layers * k), bounds=Bounds(0, 1),
               options={"mip_rel_gap": 0.0})
    if res.x is None:
        raise ValueError(f"no allocation meets the budget ({res.message})")
    return [int(i) for i in res.x.reshape(layers, k).argmax(1)]


@ALLOCATORS.register("hessian")
class HessianAllocator(Allocator):
    """Energies, weight bits or activation bits per layer from Hutchinson sensitivities and the integer program
    above."""

    name = "hessian"
    quantities = QUANTITIES
    granularities = ("layer",)
    Settings = HutchinsonSettings

    @classmethod
    def from_settings(cls, s: HutchinsonSettings, job: AllocationJob) -> "HessianAllocator":
        return cls(s.sensitivity_batches, s.hutchinson_iters, s.hutchinson_tol)

    def __init__(self, batches: int = 4, iters: int = 50, tol: float = 0.01, steps: Sequence[float] = ENERGY_STEPS):
        self.batches, self.iters, self.tol, self.steps = batches, iters, tol, tuple(steps)

    def allocate(self, problem: AllocationProblem) -> Allocation:
        model = problem.model
        if problem.bit_kinds():
            return self._bits(problem)
        if problem.target_emac is None:
            raise ValueError("the Hessian allocation spends an energy budget: it needs a target energy")
        e_avg = problem.target_emac
        with measure_cost(model) as cost:
            sens = hessian_sensitivity(model, problem.batches, problem.task, self.batches, problem.teacher,
                                       self.iters, self.tol)
        alloc = Allocation.from_model(model, self.name, problem.granularity)
        names = list(sens.values)
        layer_macs = {n: alloc.layers[n].macs for n in names}
        safe, replaced = cautious_traces(sens, layer_macs)
        c = np.array([safe[n] for n in names])
        macs = np.array([layer_macs[n] for n in names], float)
        levels = e_avg * np.array(self.steps)
        picks = choose(0.5 * c[:, None] / levels[None, :], macs[:, None] * levels[None, :], e_avg * macs.sum())
        for n, k in zip(names, picks):
            alloc.layers[n].energy = [float(levels[k])] * len(alloc.layers[n].energy)
        alloc = alloc.with_average_energy(e_avg)
        alloc.apply(model)
        alloc.info.update(alloc_seconds=round(cost.seconds, 3), alloc_forward=sens.forward,
                          alloc_backward=sens.backward, sensitivity="hutchinson", replaced_traces=len(replaced))
        return alloc


    def _bits(self, problem: AllocationProblem) -> Allocation:
        """Weight bits (HAWQ-V3's program), then activation bits (the input-Hessian costs of
        ``noisesim.allocate.activation_bits``), each within its budget."""
        def solve(kind: str, target: float):
            if kind == "weight":
                return hessian_weight_bits(problem.model, problem.batches, problem.task, target,
                                           max_batches=self.batches, iters=self.iters, tol=self.tol,
                                           teacher=problem.teacher)
            return act_bits_program(problem.model, problem.batches, problem.task, target, BIT_CANDIDATES,
                                    "hutchinson", self.batches, problem.teacher, self.iters, self.tol)

        return bit_allocation(problem, self.name, solve)


def weight_bit_costs(model, trace: dict[str, float], candidates: Sequence[int] = BIT_CANDIDATES) -> dict[str, list[float]]:
    """Omega_l(b) = tr(H_l) / n_l * ||Q_b(W_l) - W_l||^2 for every layer with weights and candidate b."""
    out = {}
    for m in sim_layers(model):
        if m.name not in trace:
            continue
        q = m.weight_quant
        w = m.weight.detach()
        rows = w.flatten(1)
        lo, hi = (rows.amin(1), rows.amax(1)) if q.cfg.per_channel else (w.min().reshape(1), w.max().reshape(1))
        shape = (-1,) + (1,) * (w.dim() - 1)
        errs = []
        for b in candidates:
            scale, zp, qmin, qmax = qparams(lo, hi, b, q.cfg.symmetric)
            errs.append(float((fake_quant_ste(w, scale.reshape(shape), zp.reshape(shape), qmin, qmax) - w)
                              .pow(2).sum()))
        out[m.name] = [trace[m.name] / w.numel() * e for e in errs]
    return out


def hessian_weight_bits(model, batches, task, b_avg: float, candidates: Sequence[int] = BIT_CANDIDATES,
                        max_batches: int = 4, iters: int = 50, tol: float = 0.01, teacher=None):
    """Weight bits per layer under an average-bits (model size) budget: HAWQ-V3's integer program.
    Returns (name -> bits, the weight Hessian traces, the layers whose non-positive trace was replaced; see
    ``cautious_traces``)."""
    trace = weight_hessian_trace(model, batches, task, max_batches, teacher, iters, tol)
    sizes = {m.name: m.weight.numel() for m in sim_layers(model) if m.name in trace.values}
    safe, replaced = cautious_traces(trace, sizes)
    costs = weight_bit_costs(model, safe, candidates)
    names = list(costs)
    n = np.array([sizes[k] for k in names], float)
    picks = choose(np.array([costs[k] for k in names]), n[:, None] * np.array(candidates)[None, :], b_avg * n.sum())
    return {k: int(candidates[i]) for k, i in zip(names, picks)}, trace, replaced

