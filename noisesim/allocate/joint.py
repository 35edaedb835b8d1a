"""Light and ADC bits per layer under one budget of joules per inference (docs/hardware.md).

A layer l spends M_l h nu E_l on light (M_l MACs per sample at E_l photons per MAC) and K_l F 2^(b_l)
on its ADC (K_l conversions per sample, one per tile partial sum, at F joules per conversion step).
To second order the loss grows by

    Delta L = sum_l c_l / E_l + sum_l a_l 4^(-b_l),

c_l = 1/2 sum_i E[g_i^2] s_i^2 (the Fisher sensitivity of the noise, s_i^2 its variance at E = 1) and
a_l = 1/2 G_l (2 r_l)^2 / 12 (G_l = sum over the partial sums of E[g^2]; a b-bit ADC over [-r, r] adds
variance (2 r)^2 4^(-b) / 12 to each). Minimising it subject to

    sum_l (M_l h nu E_l + K_l F 2^(b_l)) = B - D        (D: the DAC's share, fixed)

with one multiplier mu gives, layer by layer,

    c_l / E_l^2 = mu M_l h nu            =>  E_l = sqrt(c_l / (mu M_l h nu))
    a_l ln4 4^(-b_l) = mu K_l F ln2 2^b_l =>  b_l = log2(2 a_l / (mu K_l F)) / 3,

clipped to the allowed bits and to the energy floor; the budget is met by bisection on log mu (the spend
falls as mu grows). Whole bits: the integer program of ``noisesim.allocate.integer_program`` over
(E, b) candidates, then the energies of the chosen bits solved exactly for the rest of the budget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
import numpy as np

from noisesim.allocate.allocation import Allocation
from noisesim.allocate.base import AllocationJob, AllocationProblem, Allocator, measure_cost
from noisesim.allocate.integer_program import choose
from noisesim.allocate.sensitivity import SensitivitySettings, fisher_sensitivity
from noisesim.energy import EnergyCosts
from noisesim.nn.base import SimLayer
from noisesim.nn.prepare import sim_layers
from noisesim.registry import ALLOCATORS
from noisesim.settings import setting


@dataclass
class JointProblem:
    """Per layer: c (noise sensitivity), a (ADC sensitivity), macs M, conversions K; the photon energy h nu and
    the ADC's joules per conversion step F; the budget for light and ADCs (J per inference); the bits allowed
    and the least energy per MAC (photons)."""

    c: np.ndarray
    a: np.ndarray
    macs: np.ndarray
    conversions: np.ndarray
    photon: float
    fom: float
    budget: float
    bits: tuple[int, int] = (2, 12)
    e_min: float = 1e-3

    def __post_init__(self):
        self.c, self.a = np.maximum(np.asarray(self.c, float), 0), np.maximum(np.asarray(self.a, float), 0)
        self.macs, self.conversions = np.asarray(self.macs, float), np.asarray(self.conversions, float)
        least = self.spend(np.full_like(self.c, self.e_min), np.full_like(self.c, self.bits[0]))
        if self.budget <= least:
            raise ValueError(f"a budget of {self.budget:.4g} J cannot pay even the least light and ADC bits "
                             f"({least:.4g} J)")

    def loss(self, e: np.ndarray, b: np.ndarray) -> float:
        """sum c / E + a 4^-b."""
        return float(np.sum(self.c / e) + np.sum(self.a * 4.0 ** -np.asarray(b, float)))

    def spend(self, e: np.ndarray, b: np.ndarray) -> float:
        """sum M h nu E + K F 2^b (joules)."""
        return float(np.sum(self.macs * self.photon * e) + np.sum(self.conversions * self.fom * 2.0 ** np.asarray(b)))

    def energies_for(self, b: np.ndarray) -> np.ndarray:
        """The best energies once the bits are fixed: E_l = kappa sqrt(c_l / M_l) (floored at e_min) spending the
        rest of the budget exactly."""
        light = (self.budget - float(np.sum(self.conversions * self.fom * 2.0 ** np.asarray(b)))) / self.photon
        shape = np.sqrt(self.c / self.macs)
        floored = np.zeros_like(shape, bool)
        while True:  # the same floor rule as the closed form for energies
            rest = light - self.e_min * float(np.sum(self.macs[floored]))
            scale = rest / float(np.sum((shape * self.macs)[~floored])) if np.any(~floored) else 0.0
            e = np.where(floored, self.e_min, scale * shape)
            low = ~floored & (e < self.e_min)
            if not low.any():
                return e
            floored |= low


def continuous(p: JointProblem) -> tuple[np.ndarray, np.ndarray]:
    """(E, b) with real-valued bits: the stationary point above, mu found by bisection on the budget."""
    safe_c, safe_a = np.maximum(p.c, 1e-300), np.maximum(p.a, 1e-300)

    def at(log_mu: float) -> tuple[np.ndarray, np.ndarray]:
        mu = math.exp(log_mu)
        e = np.maximum(np.sqrt(safe_c / (mu * p.macs * p.photon)), p.e_min)
        b = np.clip(np.log2(2 * safe_a / (mu * p.conversions * p.fom)) / 3, *p.bits)
        return e, b

    lo, hi = -800.0, 800.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if p.spend(*at(mid)) > p.budget:
            lo = mid
        else:
            hi = mid
    return at(hi)


def whole_bits(p: JointProblem, grid: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """(E, b) with whole bits: the integer program over a grid of energies around the continuous optimum times
    every allowed bit-width, then the chosen bits' energies solved exactly (``JointProblem.energies_for``)."""
    e0, _ = continuous(p)
    levels = np.arange(p.bits[0], p.bits[1] + 1)
    factors = np.geomspace(1 / 16, 16, grid)
    e_cand = np.maximum(e0[:, None] * factors[None, :], p.e_min)  # (L, G)
    e_all = np.repeat(e_cand, len(levels), axis=1)  # (L, G B): energy k // B, bits k % B
    b_all = np.tile(levels, (len(e0), grid))
    costs = p.c[:, None] / e_all + p.a[:, None] * 4.0 ** -b_all
    weights = p.macs[:, None] * p.photon * e_all + p.conversions[:, None] * p.fom * 2.0 ** b_all
    picks = choose(costs, weights, p.budget)
    b = np.array([b_all[l, k] for l, k in enumerate(picks)], float)
    return p.energies_for(b), b


def hardware_budget(problem: AllocationProblem, what: str) -> tuple[list[SimLayer], float, float, float]:
    """(the noisy layers, h nu and F in joules, B): the joules of light and ADCs of the uniform point, every layer at
    the target energy and every ADC at its configured bits. ValueError naming ``what`` when there is no budget."""
    layers = [m for m in sim_layers(problem.model) if m.noise is not None]
    if problem.target_emac is None or not layers or any(m.adc is None for m in layers):
        raise ValueError(f"{what} shares one budget between light and ADCs: it needs a target energy, a noise model "
                         "and an ADC on every noisy layer (--adc_bits)")
    costs = EnergyCosts.of(layers[0].sim_config)
    photon, fom = costs.photon_energy * 1e-18, costs.adc_fom * 1e-15
    budget = sum(m.macs * photon * problem.target_emac + m.conversions * fom * 2.0 ** m.adc.bits for m in layers)
    return layers, photon, fom, float(budget)


@dataclass(frozen=True)
class JointSettings(SensitivitySettings):
    joint_bits: tuple[int, ...] = setting((2, 12), "the ADC bits the joint allocation may give a layer: LOW HIGH",
                                          "allocation", unit="bits", parse=int)


@ALLOCATORS.register("joint")
class JointAllocator(Allocator):
    """Energies and ADC bits per layer under the total energy per inference of the uniform point (the target
    energy per MAC on every layer, every ADC at its configured bits), from Fisher sensitivities."""

    name = "joint"
    quantities = ("energy",)
    granularities = ("layer",)
    Settings = JointSettings

    @classmethod
    def from_settings(cls, s: JointSettings, job: AllocationJob) -> "JointAllocator":
        return cls(s.sensitivity_batches, tuple(s.joint_bits))

    def __init__(self, batches: int = 8, bits: tuple[int, int] = (2, 12)):
        if len(bits) != 2 or not 2 <= bits[0] < bits[1] <= 16:
            raise ValueError(f"joint_bits must be LOW HIGH with 2 <= LOW < HIGH <= 16, got {' '.join(map(str, bits))}")
        self.batches, self.bits = batches, bits

    def allocate(self, problem: AllocationProblem) -> Allocation:
        model = problem.model
        layers, photon, fom, uniform = hardware_budget(problem, "the joint allocation")
        with measure_cost(model) as cost:
            sens = fisher_sensitivity(model, problem.batches, problem.task, self.batches, teacher=problem.teacher)
        configured = np.array([m.adc.bits for m in layers])
        macs = np.array([m.macs for m in layers], float)
        conversions = np.array([m.conversions for m in layers], float)
        power = sens.extra["gradient_power"]
        p = JointProblem(c=np.array([0.5 * float(sens.values[m.name].sum()) for m in layers]),
                         a=np.array([0.5 * power[m.name] * (2 * float(m.adc.bound())) ** 2 / 12 for m in layers]),
                         macs=macs, conversions=conversions, photon=photon, fom=fom, budget=uniform,
                         bits=self.bits, e_min=0.05 * problem.target_emac)
        e, b = whole_bits(p)
        alloc = Allocation.from_model(model, self.name, "layer")
        for m, e_l, b_l in zip(layers, e, b):
            alloc.layers[m.name].energy = [float(e_l)]
            alloc.layers[m.name].adc_bits = float(b_l)
        alloc.apply(model)
        alloc.info.update(cost.as_info(), budget_j=uniform, predicted_loss=p.loss(e, b),
                          uniform_predicted_loss=p.loss(np.full(len(layers), problem.target_emac), configured))
        return alloc
