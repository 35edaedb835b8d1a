"""Sensitivity + greedy allocation: lower layers one at a time while the accuracy drop stays within epsilon.

The classic per-layer study (e.g. a VGG16 at 4-bit activations, one layer at a time at 2 bits):

1. from a configuration with every layer "high", measure each layer's drop when it alone goes "low";
2. sort the layers least sensitive first;
3. lower them one by one, re-evaluating the whole configuration, and keep each (ACCEPT) while the
   drop against the all-high configuration stays <= epsilon, else put it back (REJECT).

"High" and "low" are energies (E and E / factor) or bit-widths. Under a bit budget b (weight bits,
weighted by weight counts, or activation bits, weighted by input elements) the layers go from
floor(b) + 1 to max(2, floor(b) - 1) bits in the order of step 2 until the weighted average reaches b
(the budget replaces epsilon as the stopping rule). With ``greedy_bits=(high, low)`` (e.g. 4 and 2)
the study runs as above, epsilon deciding each layer, and stops early once the average is within the
budget (a budget of ``low`` bits lets epsilon alone decide). Evaluation
runs on held-out training batches with the task's metric (accuracy, AUROC, ...) — never on the
test set — and with the same noise draws every time (each noise model reseeded), so that the
comparisons are not swamped by draw-to-draw variation. For an energy budget the greedy result
gives the allocation's shape; one common factor then brings its average to the target.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch
from torch import nn

from noisesim.allocate.allocation import Allocation
from noisesim.allocate.base import (AllocationJob, AllocationProblem, Allocator, bit_sizes, measure_cost, set_bits,
                                    QUANTITIES)
from noisesim.allocate.sensitivity import SensitivitySettings
from noisesim.nn.prepare import sim_layers
from noisesim.noise.base import NoiseModel
from noisesim.registry import ALLOCATORS
from noisesim.settings import ConfigError, in_range, setting
from noisesim.train.loop import evaluate


@dataclass(frozen=True)
class GreedySettings(SensitivitySettings):
    greedy_epsilon: float = setting(0.01, "greedy: the largest accuracy drop (a fraction) a lowered layer may add "
                                    "up to", "allocation", check=in_range(0, 1))
    greedy_factor: float = setting(4.0, "greedy: a lowered layer's energy is the high one divided by this",
                                   "allocation", check=in_range(1, 1e6, include_lo=False))
    greedy_bits: tuple = setting((), "greedy on bits: HIGH LOW (e.g. 4 2) runs the classic study, every layer at "
                                 "HIGH bits and lowered to LOW one at a time while the drop stays within "
                                 "--greedy_epsilon, until the budget is met (default: the bit-widths around the "
                                 "budget, lowered in order of sensitivity until it is met)", "allocation",
                                 unit="bits", parse=int, check=in_range(1, 16), reaches="bits")

    def __post_init__(self):
        if self.greedy_bits and (len(self.greedy_bits) != 2 or self.greedy_bits[0] <= self.greedy_bits[1]):
            raise ConfigError(f"--greedy_bits {' '.join(map(str, self.greedy_bits))}: give two bit-widths, "
                              "HIGH LOW with HIGH > LOW (e.g. 4 2)", "greedy_bits")


@dataclass
class GreedyResult:
    """The per-layer drops (sorted least sensitive first), the layers kept low, what was decided for each
    layer tried (ACCEPT / REJECT, in order), and the log lines."""

    base: float
    drops: list[tuple[str, float]]
    low: list[str]
    final: float
    log: list[str] = field(default_factory=list)
    decisions: dict[str, str] = field(default_factory=dict)


def greedy(layers: Sequence[str], evaluate_low: Callable[[frozenset], float], epsilon: float,
           done: Optional[Callable[[list[str]], bool]] = None) -> GreedyResult:
    """Run the three steps above; ``evaluate_low(set of low layers)`` gives the metric of a configuration;
    ``done(low layers)``: stop lowering once it holds (a budget met). Each configuration is evaluated once (a
    layer tried while none is low is its own single-layer configuration)."""
    seen: dict[frozenset, float] = {}

    def evaluate_low(low: frozenset, run=evaluate_low) -> float:
        if low not in seen:
            seen[low] = run(low)
        return seen[low]

    base = evaluate_low(frozenset())
    drops = sorted(((name, base - evaluate_low(frozenset([name]))) for name in layers), key=lambda d: d[1])
    log = [f"base {base:.4f}"] + [f"sensitivity {name}: drop {d:+.4f}" for name, d in drops]
    low: list[str] = []
    decisions: dict[str, str] = {}
    final = base
    for name, _ in drops:
        if done is not None and done(low):
            log.append("budget met: no further layer lowered")
            break
        metric = evaluate_low(frozenset(low + [name]))
        drop = base - metric
        if drop <= epsilon:
            low.append(name)
            final = metric
            decisions[name] = "ACCEPT"
            log.append(f"ACCEPT {name}: metric {metric:.4f} drop {drop:+.4f} <= {epsilon:g}")
        else:
            decisions[name] = "REJECT"
            log.append(f"REJECT {name}: metric {metric:.4f} drop {drop:+.4f} > {epsilon:g}")
    log.append(f"final: {len(low)} of {len(layers)} layers low, metric {final:.4f}, drop {base - final:+.4f}")
    return GreedyResult(base, drops, low, final, log, decisions)


def _reseeded(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, NoiseModel):
            m.sampler.reset()


@ALLOCATORS.register("greedy")
class GreedyAllocator(Allocator):
    """Energies: each layer at E or E / ``factor``, greedily under ``epsilon``; then rescaled to the budget."""

    name = "greedy"
    quantities = QUANTITIES
    granularities = ("layer",)
    Settings = GreedySettings

    @classmethod
    def from_settings(cls, s: GreedySettings, job: AllocationJob) -> "GreedyAllocator":
        return cls(s.greedy_epsilon, s.greedy_factor, s.sensitivity_batches, bits=s.greedy_bits)

    def __init__(self, epsilon: float = 0.01, factor: float = 4.0, batches: int = 8, verbose: bool = True,
                 bits: Sequence[int] = ()):
        self.epsilon, self.factor, self.batches, self.verbose = epsilon, factor, batches, verbose
        self.bits = tuple(bits)  # (high, low): the classic study on bits; (): around the budget

    def allocate(self, problem: AllocationProblem) -> Allocation:
        held = list(itertools.islice(iter(problem.batches), self.batches))
        if problem.bit_kinds():
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
        """Each kind of bits in turn (weights, then activations), greedily toward its budget. The allocation's
        info keeps the log and, under ``greedy``, per kind: the high and low bits, the held-out metric with every
        layer high, each layer's drop when it alone is low (least sensitive first) and what was decided."""
        model, log, studies = problem.model, [], {}
        with measure_cost(model) as cost, torch.no_grad():
            for kind in problem.bit_kinds():
                studies[kind] = self._lower(problem, held, kind)
                log += [f"{kind} bits: {line}" for line in studies[kind].pop("log")]
        if self.verbose:
            print("\n".join(f"greedy: {line}" for line in log))
        alloc = Allocation.from_model(model, self.name, problem.granularity)
        alloc.info.update(cost.as_info(), greedy_low_layers=sum(len(g["low"]) for g in studies.values()), log=log,
                          greedy=studies)
        return alloc

    def _lower(self, problem: AllocationProblem, held: list, kind: str) -> dict:
        """Lower ``kind`` bits layer by layer (see the module's docstring); leaves the result applied."""
        model, target = problem.model, problem.target_bits(kind)
        sizes = bit_sizes(model, kind)
        high, low = self.bits or (math.floor(target + 1e-9) + 1, max(2, math.floor(target + 1e-9) - 1))

        def evaluate_low(lowered) -> float:
            set_bits(model, kind, {n: low if n in lowered else high for n in sizes})
            return evaluate(model, held, problem.task, teacher=problem.teacher)

        def within_budget(lowered) -> bool:
            return sum(sizes[n] * (low if n in lowered else high) for n in sizes) / sum(sizes.values()) <= target

        if self.bits:  # the classic study: epsilon decides, the budget stops
            r = greedy(list(sizes), evaluate_low, self.epsilon, done=within_budget)
            evaluate_low(frozenset(r.low))
            return {"high": high, "low_bits": low, "base": r.base, "drops": r.drops, "low": r.low,
                    "decisions": r.decisions, "log": [f"{high} -> {low} bits, epsilon {self.epsilon:g}"] + r.log}
        base = evaluate_low(frozenset())
        drops = sorted(((n, base - evaluate_low(frozenset([n]))) for n in sizes), key=lambda d: d[1])
        lowered: list[str] = []
        for name, _ in drops:
            if within_budget(lowered):
                break
            lowered.append(name)
        evaluate_low(frozenset(lowered))
        return {"high": high, "low_bits": low, "base": base, "drops": drops, "low": lowered,
                "decisions": {n: "LOWERED" for n in lowered},
                "log": [f"sensitivity {n}: drop {d:+.4f}" for n, d in drops]
                + [f"lowered from {high} to {low} bits: {', '.join(lowered)}"]}
