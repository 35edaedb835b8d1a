"""Sensitivity + greedy allocation: lower layers one at a time while the accuracy drop stays within epsilon.

The classic per-layer study (e.g. a VGG16 at 4-bit activations, one layer at a time at 2 bits):

1. from a configuration with every layer "high", measure each layer's drop when it alone goes "low";
2. sort the layers least sensitive first;
3. lower them one by one, re-evaluating the whole configuration, and keep each (ACCEPT) while the
   drop against the all-high configuration stays <= epsilon, else put it back (REJECT).

"High" and "low" are energies (E and E / factor) or bit-widths (base and low bits). Under a weight-
bits budget b (``quantity="weight_bits"``) the layers go from floor(b) + 1 to max(2, floor(b) - 1)
bits in the same order until the weight-count weighted average reaches b (the budget replaces
epsilon as the stopping rule). Evaluation
runs on held-out training batches with the task's metric (accuracy, AUROC, ...) — never on the
test set — and with the same noise draws every time (each noise model reseeded), so that the
comparisons are not swamped by draw-to-draw variation. For an energy budget the greedy result
gives the allocation's shape; one common factor then brings its average to the target.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from noisesim.allocate.allocation import Allocation
from noisesim.allocate.base import (AllocationJob, AllocationProblem, Allocator, measure_cost, set_weight_bits,
                                   weight_layers)
from noisesim.allocate.sensitivity import SensitivitySettings
from noisesim.nn.prepare import sim_layers
from noisesim.noise.base import NoiseModel
from noisesim.registry import ALLOCATORS
from noisesim.settings import in_range, setting
from noisesim.train.loop import evaluate


@dataclass(frozen=True)
class GreedySettings(SensitivitySettings):
    greedy_epsilon: float = setting(0.01, "greedy: the largest accuracy drop (a fraction) a lowered layer may add "
                                    "up to", "allocation", check=in_range(0, 1))
    greedy_factor: float = setting(4.0, "greedy: a lowered layer's energy is the high one divided by this",
                                   "allocation", check=in_range(1, 1e6, include_lo=False))


@dataclass
class GreedyResult:
    """The per-layer drops (sorted least sensitive first), the layers kept low, and the log lines."""

    base: float
    drops: list[tuple[str, float]]
    low: list[str]
    final: float
    log: list[str] = field(default_factory=list)


def greedy(layers: Sequence[str], evaluate_low: Callable[[frozenset], float], epsilon: float) -> GreedyResult:
    """Run the three steps above; ``evaluate_low(set of low layers)`` gives the metric of a configuration."""
    base = evaluate_low(frozenset())
    drops = sorted(((name, base - evaluate_low(frozenset([name]))) for name in layers), key=lambda d: d[1])
    log = [f"base {base:.4f}"] + [f"sensitivity {name}: drop {d:+.4f}" for name, d in drops]
    low: list[str] = []
    final = base
    for name, _ in drops:
        metric = evaluate_low(frozenset(low + [name]))
        drop = base - metric
        if drop <= epsilon:
            low.append(name)
            final = metric
            log.append(f"ACCEPT {name}: metric {metric:.4f} drop {drop:+.4f} <= {epsilon:g}")
        else:
            log.append(f"REJECT {name}: metric {metric:.4f} drop {drop:+.4f} > {epsilon:g}")
    log.append(f"final: {len(low)} of {len(layers)} layers low, metric {final:.4f}, drop {base - final:+.4f}")
    return GreedyResult(base, drops, low, final, log)


def _reseeded(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, NoiseModel):
            m.sampler.reset()


@ALLOCATORS.register("greedy")
class GreedyAllocator(Allocator):
    """Energies: each layer at E or E / ``factor``, greedily under ``epsilon``; then rescaled to the budget."""

    name = "greedy"
    granularities = ("layer",)
    Settings = GreedySettings

    @classmethod
    def from_settings(cls, s: GreedySettings, job: AllocationJob) -> "GreedyAllocator":
        return cls(s.greedy_epsilon, s.greedy_factor, s.sensitivity_batches)

    def __init__(self, epsilon: float = 0.01, factor: float = 4.0, batches: int = 8, verbose: bool = True):
        self.epsilon, self.factor, self.batches, self.verbose = epsilon, factor, batches, verbose

    def allocate(self, problem: AllocationProblem) -> Allocation:
        held = list(itertools.islice(iter(problem.batches), self.batches))
        if problem.quantity == "weight_bits":
            return self._bits(problem, held)
        if problem.target_emac is None:
            raise ValueError("the greedy energy allocation needs a target energy")
        model, e = problem.model, problem.target_emac
        layers = {m.name: m for m in sim_layers(model) if m.noise is not None}

        def evaluate_low(low: frozenset) -> float:
            for name, m in layers.items():
                m.set_energy(e / self.factor if name in low else e)
            _reseeded(model)
            return evaluate(model, held, problem.task, teacher=problem.teacher)

        with measure_cost(model) as cost, torch.no_grad():
            result = greedy(list(layers), evaluate_low, self.epsilon)
            evaluate_low(frozenset(result.low))
        if self.verbose:
            print("\n".join(f"greedy: {line}" for line in result.log))
        alloc = Allocation.from_model(model, self.name, problem.granularity).with_average_energy(e)
        alloc.apply(model)
        alloc.info.update(cost.as_info(), greedy_low_layers=len(result.low), greedy_drop=result.base - result.final,
                          log=result.log)
        return alloc


    def _bits(self, problem: AllocationProblem, held: list) -> Allocation:
        model, target = problem.model, problem.target_weight_bits
        layers = weight_layers(model)
        high, low = math.floor(target + 1e-9) + 1, max(2, math.floor(target + 1e-9) - 1)
        sizes = {n: m.weight.numel() for n, m in layers.items()}

        def evaluate_low(lowered) -> float:
            set_weight_bits(model, {n: low if n in lowered else high for n in layers})
            return evaluate(model, held, problem.task, teacher=problem.teacher)

        with measure_cost(model) as cost, torch.no_grad():
            base = evaluate_low(frozenset())
            drops = sorted(((n, base - evaluate_low(frozenset([n]))) for n in layers), key=lambda d: d[1])
            lowered: list[str] = []
            for name, _ in drops:
                if sum(sizes[n] * (low if n in lowered else high) for n in layers) / sum(sizes.values()) <= target:
                    break
                lowered.append(name)
            evaluate_low(frozenset(lowered))
        alloc = Allocation.from_model(model, self.name, problem.granularity)
        alloc.info.update(cost.as_info(), greedy_low_layers=len(lowered),
                          log=[f"sensitivity {n}: drop {d:+.4f}" for n, d in drops] +
                          [f"lowered to {low} bits: {', '.join(lowered)}"])
        return alloc


def greedy_bits(model: nn.Module, batches: Sequence, task, epsilon: float, base_bits: int = 4, low_bits: int = 2,
                what: str = "act", teacher=None) -> GreedyResult:
    """The classic study on bit-widths: every layer's activations (``what="act"``) or weights at
    ``base_bits``, one at a time at ``low_bits``, greedily under ``epsilon``. Leaves the result applied."""
    layers = {m.name: m for m in sim_layers(model)}

    def evaluate_low(low: frozenset) -> float:
        for name, m in layers.items():
            bits = low_bits if name in low else base_bits
            m.set_bits(weight=bits if what == "weight" else None, act=bits if what == "act" else None)
        return evaluate(model, batches, task, teacher=teacher)

    with torch.no_grad():
        result = greedy(list(layers), evaluate_low, epsilon)
        evaluate_low(frozenset(result.low))
    return result
