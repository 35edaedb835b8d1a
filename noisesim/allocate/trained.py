"""Trained allocation (Garg et al. 2021): log-energies and/or log2 bit-widths learnt under a constrained loss.

Only the chosen allocation parameters train — selected by module type, never by name:
log-energies of noise models, log2 bit-widths (``BitWidth``) and learnable quantizer ranges;
the network's weights stay frozen and in eval mode. The loss is

    task_loss + lambda * max(0, log E_avg - log E_target)                (constrained energy)
              + lambda * [max(0, w_avg - w_target) + max(0, a_avg - a_target)]   (bits)

(``constrained=False``: lambda * log E_avg). After training, an allocation still above its
energy target is scaled down by one common factor (``projected``), and bit-widths above their
targets are lowered by one common log2 shift, so every point spends at most its budget. Rounded
bit-widths then fill what is left of the budget (``fill_bits``): the penalty sees the rounded
average, and bits that learnt similar values cross a rounding threshold together, which would
otherwise leave up to a whole bit of the budget unspent.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from noisesim.allocate.allocation import Allocation
from noisesim.allocate.base import AllocationJob, AllocationProblem, Allocator, measure_cost, QUANTITIES
from noisesim.energy import (average_act_bits, average_energy, average_weight_bits, bits_penalty,
                             energy_penalty)
from noisesim.noise.base import NoiseModel
from noisesim.quant.bitwidth import BitWidth
from noisesim.quant.fake_quant import FakeQuantize
from noisesim.registry import ALLOCATORS
from noisesim.settings import at_least_one, in_range, non_negative, setting
from noisesim.train.loop import OPTIMIZERS, SCHEDULES, TrainConfig, evaluate, train


@dataclass(frozen=True)
class TrainedSettings:
    """What trains and toward what. energy / bits / ranges: train log-energies, log2 bit-widths,
    activation ranges. lambd: penalty weight; constrained: hinge at the targets (else lambda log E_avg);
    max_act: activation bits of the largest input map count; checkpoint: keep the best evaluated step
    (scored on 4 training batches) that meets the constraint, every ``train.eval_every`` steps.
    window / tol: stop early once the targets are met and the mean task loss of the last ``window``
    steps improved on the ``window`` before by less than ``tol`` (relative); 0 trains every step."""

    train: TrainConfig
    energy: bool = True
    bits: bool = False
    ranges: bool = False
    lambd: float = 1.0
    constrained: bool = True
    target_weight_bits: Optional[float] = None
    target_act_bits: Optional[float] = None
    max_act: bool = False
    checkpoint: bool = False
    window: int = 0
    tol: float = 0.005


A = "allocation"


@dataclass(frozen=True)
class TrainingSettings:
    """The command-line settings of trained allocations (and of uniform points that train bits or ranges)."""

    lambd: float = setting(1.0, "penalty weight lambda", A, sweep=True, check=in_range(0, 1e6), reaches="training")
    lr: float = setting(0.05, "learning rate of trained allocations", A, sweep=True,
                        check=in_range(0, 100, include_lo=False), reaches="training")
    optimizer: str = setting("adam", "optimizer of trained allocations", A, choices=lambda: OPTIMIZERS,
                             reaches="training")
    train_batches: int = setting(100, "optimiser steps of trained allocations (at most, see --converge_window)", A,
                                 unit="batches", check=at_least_one, reaches="training")
    lr_schedule: str = setting("cosine", "learning-rate schedule of trained allocations over --train_batches", A,
                               choices=lambda: SCHEDULES, reaches="training")
    constrained_loss: bool = setting(False, "penalty lambda*max(0, log E - log E_target) instead of lambda*log E", A,
                                     reaches="training")
    converge_window: int = setting(25, "stop training once the targets are met and the mean loss of the last N "
                                   "steps improved on the N before by less than --converge_tol (0: never)", A,
                                   unit="steps", check=non_negative, reaches="training")
    converge_tol: float = setting(0.005, "relative loss improvement below which training has converged", A,
                                  check=in_range(0, 1, include_lo=False), reaches="training")
    continuation: bool = setting(True, "train each target of a sweep from the solution of the next higher "
                                 "target (same allocation, granularity and settings)", A, reaches="training")
    checkpoint: bool = setting(False, "keep the best evaluated step that meets the constraint", A,
                               reaches="training")
    checkpoint_every: int = setting(25, "steps between checkpoint evaluations", A, unit="steps",
                                    check=at_least_one, reaches="training")
    max_act: bool = setting(False, "the activation-bits target applies to the largest feature map", A,
                            reaches="training")


def trainable_parameters(model: nn.Module, noise: bool, bitwidth: bool, qminmax: bool) -> list[nn.Parameter]:
    """Freeze the model and return (with requires_grad on) the parameters of the chosen kinds."""
    chosen = []
    for m in model.modules():
        if noise and isinstance(m, NoiseModel):
            chosen.append(m.log_energy)
        elif bitwidth and isinstance(m, BitWidth):
            chosen.append(m.log2_bits)
        elif qminmax and isinstance(m, FakeQuantize) and m.cfg.learnable_range:
            chosen += [m.lo, m.hi]
    ids = {id(p) for p in chosen}
    for p in model.parameters():
        p.requires_grad_(id(p) in ids)
    return chosen


class AllocationPenalty:
    """Callable for the training loop: returns (penalty, stats) for the model's current allocation."""

    def __init__(self, model: nn.Module, s: TrainedSettings, target_emac: Optional[float]):
        self.model, self.s, self.target_emac = model, s, target_emac

    def __call__(self) -> tuple[torch.Tensor, dict[str, float]]:
        s = self.s
        pen = torch.zeros(())
        stats: dict[str, float] = {}
        if s.energy:
            e = average_energy(self.model)
            pen = pen + energy_penalty(e, self.target_emac, s.lambd, s.constrained)
            stats["avg_emac"] = e.item()
        if s.bits:
            w = average_weight_bits(self.model)
            a = average_act_bits(self.model, s.max_act)
            pen = pen + bits_penalty(w, a, s.target_weight_bits, s.target_act_bits, s.lambd)
            stats["avg_wbits"] = w.item() if w is not None else float("nan")
            if a is not None:
                stats["avg_abits"] = a.item()
        return pen, stats

    def feasible(self, tol: float = 1e-6) -> bool:
        """Every target is met (to a relative ``tol``)."""
        s = self.s
        with torch.no_grad():
            if s.energy and self.target_emac is not None and \
                    average_energy(self.model).item() > self.target_emac * (1 + tol):
                return False
            if s.bits:
                w = average_weight_bits(self.model)
                if s.target_weight_bits is not None and w is not None and w.item() > s.target_weight_bits + tol:
                    return False
                a = average_act_bits(self.model, s.max_act)
                if s.target_act_bits is not None and a is not None and a.item() > s.target_act_bits + tol:
                    return False
        return True


def plateaued(history: list[dict[str, float]], window: int, tol: float) -> bool:
    """The mean loss of the last ``window`` steps improved on the ``window`` before by less than ``tol``."""
    if window < 1 or len(history) < 2 * window:
        return False
    last = sum(h["loss"] for h in history[-window:]) / window
    prev = sum(h["loss"] for h in history[-2 * window:-window]) / window
    return prev - last < tol * abs(prev)


@torch.no_grad()
def project_bits(model: nn.Module, penalty: AllocationPenalty, step: float = 0.01, max_steps: int = 800) -> bool:
    """Lower every learnable log2 bit-width by one common shift until the bit targets are met.

    Rounded bits make the averages piecewise constant, so the shift grows in small steps
    until ``penalty.feasible()``; True if anything had to move.
    """
    widths = [m for m in model.modules() if isinstance(m, BitWidth)]
    moved = False
    for _ in range(max_steps):
        if not widths or penalty.feasible():
            break
        for m in widths:
            m.log2_bits.sub_(step)
        moved = True
    return moved


@torch.no_grad()
def fill_bits(model: nn.Module, penalty: AllocationPenalty) -> int:
    """Raise rounded bit-widths one level at a time while every bit target stays met.

    Largest remainder first: each element (layer or channel) of a learnable bit-width has a
    remainder (``BitWidth.remainders``: x - round(x), x = b, or log2 b for ``discrete``); elements are
    tried in descending remainder and set to the next rounding level (round(b) + 1, or twice it)
    whenever the averages stay within their targets, else left as they were; passes repeat until
    none fits, so no element can take one more level within the budget. Continuous bits
    (``rounding="none"``) are left alone. Returns the number of raises.
    """
    widths = [m for m in model.modules() if isinstance(m, BitWidth)]
    raised, before = 0, -1
    while raised > before:  # passes until nothing more fits
        before = raised
        candidates = []
        for m in widths:
            remainder, level = m.remainders()
            candidates += [(r, m, i, n) for i, (r, n) in enumerate(zip(remainder.tolist(), level.tolist()))
                           if math.isfinite(n)]
        for _, m, i, level in sorted(candidates, key=lambda c: -c[0]):
            old = m.log2_bits[i].item()
            m.log2_bits[i] = math.log2(level)
            if penalty.feasible():
                raised += 1
            else:
                m.log2_bits[i] = old
    return raised


@ALLOCATORS.register("trained")
class TrainedAllocator(Allocator):
    name = "trained"
    quantities = QUANTITIES
    Settings = TrainingSettings

    def __init__(self, settings: TrainedSettings):
        self.s = settings

    @classmethod
    def from_settings(cls, s: TrainingSettings, job: AllocationJob) -> "TrainedAllocator":
        train = TrainConfig(steps=s.train_batches, lr=s.lr, optimizer=s.optimizer, schedule=s.lr_schedule,
                            generated_labels=job.generated_labels, eval_every=s.checkpoint_every if s.checkpoint else 0,
                            progress=job.progress, desc=job.desc)
        return cls(TrainedSettings(train, energy=job.train_energy, bits=job.train_bits, ranges=job.train_ranges,
                                   lambd=s.lambd, constrained=s.constrained_loss,
                                   target_weight_bits=job.target_weight_bits, target_act_bits=job.target_act_bits,
                                   max_act=s.max_act, checkpoint=s.checkpoint, window=s.converge_window,
                                   tol=s.converge_tol))

    def allocate(self, problem: AllocationProblem) -> Allocation:
        s, model = self.s, problem.model
        params = trainable_parameters(model, noise=s.energy, bitwidth=s.bits, qminmax=s.ranges)
        penalty = AllocationPenalty(model, s, problem.target_emac if s.energy else None)
        score_fn = None
        if s.checkpoint:  # select on training batches, never on the evaluation set
            held = list(itertools.islice(iter(problem.batches), 4))
            score_fn = lambda: evaluate(model, held, problem.task)  # noqa: E731
        model.eval()
        for m in model.modules():
            if isinstance(m, BitWidth):
                m.train()  # stochastic rounding while training
        def converged(history):
            return plateaued(history, s.window, s.tol) and penalty.feasible(tol=0.01)

        with measure_cost(model, params) as cost:
            result = train(model, params, problem.batches, problem.task, s.train, penalty, teacher=problem.teacher,
                           score_fn=score_fn, feasible=penalty.feasible if s.constrained else None,
                           converged=converged)
        model.eval()
        for p in params:
            p.requires_grad_(False)
        projected = False
        if s.energy and s.constrained and problem.target_emac is not None:
            alloc = Allocation.from_model(model)
            if alloc.average_energy() > problem.target_emac:
                alloc.with_average_energy(problem.target_emac).apply(model)
                projected = True
        projected = (s.bits and project_bits(model, penalty)) or projected
        filled = fill_bits(model, penalty) if s.bits else 0
        alloc = Allocation.from_model(model, self.name if s.energy else "uniform", problem.granularity)
        alloc.info.update(cost.as_info(), best_step=result.best_step, projected=bool(projected), filled=filled,
                          steps=len(result.history), converged=result.converged,
                          final_loss=result.history[-1]["loss"] if result.history else None,
                          history=result.history)
        return alloc
