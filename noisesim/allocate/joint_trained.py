"""Trained joint allocation: each layer's log-energy and ADC log2-bits learnt together under one joule budget.

Only the log-energies and the ADCs' log2 bit-widths train (the network stays frozen), on the loss

    task_loss + lambda * max(0, log J - log B),      J = sum_l (M_l h nu mean_c(E_l) + K_l F 2^(b_l))

with B the uniform point's joules (the target energy on every layer, every ADC at its configured bits; the
DACs' share is fixed and left out), M_l the layer's MACs and K_l its conversions per inference. The bits are
rounded with a straight-through estimator (``BitWidth``, rounding ``round``), so the forward always runs whole
bits. After training the energies are scaled by one common factor so that J = B exactly (down from above,
and up from below: the hinge does not reward spending, and the bits' straight-through gradient is weak, so
bits drift below what the budget pays for; light fills the rest, as in the closed form); when the ADCs alone
spend more than B, every ADC is first lowered by one common log2 shift until light can close the gap. The
closed form of the same problem is ``noisesim.allocate.joint``.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from noisesim.allocate.allocation import Allocation
from noisesim.allocate.base import AllocationJob, AllocationProblem, Allocator, measure_cost
from noisesim.allocate.joint import hardware_budget
from noisesim.allocate.trained import TrainingSettings, plateaued
from noisesim.nn.base import SimLayer
from noisesim.quant.fake_quant import FakeQuantize
from noisesim.registry import ALLOCATORS
from noisesim.train.loop import TrainConfig, train


class JoulePenalty:
    """The training loop's penalty: lambda * max(0, log J - log B), and whether J <= B."""

    def __init__(self, layers: list[SimLayer], photon: float, fom: float, budget: float, lambd: float):
        self.layers, self.photon, self.fom, self.budget, self.lambd = layers, photon, fom, budget, lambd

    def joules(self) -> torch.Tensor:
        """J, differentiable in the log-energies and the ADC log2 bits."""
        return sum(m.macs * self.photon * m.energy().double().mean()
                   + m.conversions * self.fom * torch.pow(2.0, torch.as_tensor(m.adc.quant.bits()).double().mean())
                   for m in self.layers)

    def __call__(self) -> tuple[torch.Tensor, dict[str, float]]:
        j = self.joules()
        pen = self.lambd * torch.clamp(torch.log(j) - math.log(self.budget), min=0)
        return pen.float(), {"energy_j": float(j.detach())}

    def feasible(self, tol: float = 1e-6) -> bool:
        with torch.no_grad():
            return float(self.joules()) <= self.budget * (1 + tol)


def learnable_adc_bits(m: SimLayer) -> None:
    """Give layer ``m``'s ADC a learnable bit-width (rounded to whole bits), keeping its range."""
    old = m.adc.quant
    if old.bitwidth is not None:
        return
    new = FakeQuantize(dataclasses.replace(old.cfg, learnable_bits=True, bit_rounding="round")).to(old.lo.device)
    with torch.no_grad():
        new.lo.copy_(old.lo)
        new.hi.copy_(old.hi)
        new.calibrated.copy_(old.calibrated)
    new.touch()
    m.adc.quant = new


@ALLOCATORS.register("joint_trained")
class JointTrainedAllocator(Allocator):
    name = "joint_trained"
    quantities = ("energy",)
    Settings = TrainingSettings

    def __init__(self, train_cfg: TrainConfig, lambd: float = 1.0, window: int = 0, tol: float = 0.005):
        self.train_cfg, self.lambd, self.window, self.tol = train_cfg, lambd, window, tol

    @classmethod
    def from_settings(cls, s: TrainingSettings, job: AllocationJob) -> "JointTrainedAllocator":
        cfg = TrainConfig(steps=s.train_batches, lr=s.lr, optimizer=s.optimizer, schedule=s.lr_schedule,
                          generated_labels=job.generated_labels, progress=job.progress, desc=job.desc)
        return cls(cfg, s.lambd, s.converge_window, s.converge_tol)

    def allocate(self, problem: AllocationProblem) -> Allocation:
        model = problem.model
        layers, photon, fom, budget = hardware_budget(problem, "the trained joint allocation")
        for m in layers:
            learnable_adc_bits(m)
        params = [m.noise.log_energy for m in layers] + [m.adc.quant.bitwidth.log2_bits for m in layers]
        chosen = {id(p) for p in params}
        for p in model.parameters():
            p.requires_grad_(id(p) in chosen)
        penalty = JoulePenalty(layers, photon, fom, budget, self.lambd)
        model.eval()

        def converged(history):
            return plateaued(history, self.window, self.tol) and penalty.feasible(tol=0.01)

        with measure_cost(model, params) as cost:
            result = train(model, params, problem.batches, problem.task, self.train_cfg, penalty,
                           teacher=problem.teacher, feasible=penalty.feasible, converged=converged)
        for p in params:
            p.requires_grad_(False)
        projected = _project(layers, penalty)
        alloc = Allocation.from_model(model, self.name, problem.granularity)
        alloc.info.update(cost.as_info(), budget_j=budget, projected=projected,
                          steps=len(result.history), converged=result.converged,
                          final_loss=result.history[-1]["loss"] if result.history else None, history=result.history)
        return alloc


@torch.no_grad()
def _project(layers: list[SimLayer], penalty: JoulePenalty, step: float = 0.01, max_steps: int = 2000) -> bool:
    """Spend exactly the budget: lower every ADC by one common log2 shift while the ADCs alone overspend it,
    then scale every energy by one factor. True if the allocation was above the budget."""
    above = not penalty.feasible()
    for _ in range(max_steps):
        adc = float(penalty.joules()) - sum(m.macs * penalty.photon * float(m.energy().mean()) for m in layers)
        if adc < penalty.budget * 0.999:
            break
        for m in layers:
            m.adc.quant.bitwidth.log2_bits.sub_(step)
    light = float(penalty.joules()) - adc
    factor = (penalty.budget - adc) / light
    for m in layers:
        m.noise.log_energy.add_(math.log(factor))
    return above
