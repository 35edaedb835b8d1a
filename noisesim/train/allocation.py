"""Training an allocation: which parameters train, the penalty, and the energy projection.

Parameters are selected by module type, never by name: log-energies of noise models
(``train_noise``), log2 bit-widths (``train_bitwidth``) and learnable quantizer ranges
(``train_qminmax``). Everything else is frozen. The penalty is that of DESIGN.md section 2
(see ``noisesim.energy``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from noisesim.energy import (average_act_bits, average_energy, average_weight_bits, bits_penalty,
                             energy_penalty)
from noisesim.noise.base import NoiseModel
from noisesim.quant.bitwidth import BitWidth
from noisesim.quant.fake_quant import FakeQuantize


@dataclass(frozen=True)
class AllocationTargets:
    """What the penalty aims at. None disables a term. ``constrained``: hinge at the target
    (else lambda * log E_avg); ``max_act``: activation bits of the largest input map."""

    target_emac: Optional[float] = None
    target_weight_bits: Optional[float] = None
    target_act_bits: Optional[float] = None
    lambd: float = 1.0
    constrained: bool = True
    max_act: bool = False


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

    def __init__(self, model: nn.Module, targets: AllocationTargets, energy: bool, bits: bool):
        self.model, self.targets, self.energy, self.bits = model, targets, energy, bits

    def __call__(self) -> tuple[torch.Tensor, dict[str, float]]:
        t = self.targets
        pen = torch.zeros(())
        stats: dict[str, float] = {}
        if self.energy:
            e = average_energy(self.model)
            pen = pen + energy_penalty(e, t.target_emac, t.lambd, t.constrained)
            stats["avg_emac"] = e.item()
        if self.bits:
            w = average_weight_bits(self.model)
            a = average_act_bits(self.model, t.max_act)
            pen = pen + bits_penalty(w, a, t.target_weight_bits, t.target_act_bits, t.lambd)
            stats["avg_wbits"] = w.item() if w is not None else float("nan")
            if a is not None:
                stats["avg_abits"] = a.item()
        return pen, stats

    def feasible(self, tol: float = 1e-6) -> bool:
        """Every target is met (to a relative ``tol``)."""
        t = self.targets
        with torch.no_grad():
            if self.energy and t.target_emac is not None and \
                    average_energy(self.model).item() > t.target_emac * (1 + tol):
                return False
            if self.bits:
                w = average_weight_bits(self.model)
                if t.target_weight_bits is not None and w is not None and w.item() > t.target_weight_bits + tol:
                    return False
                a = average_act_bits(self.model, t.max_act)
                if t.target_act_bits is not None and a is not None and a.item() > t.target_act_bits + tol:
                    return False
        return True


@torch.no_grad()
def project_energy(model: nn.Module, target: float) -> bool:
    """Scale all energies by one factor so the average is at most ``target``; True if it had to."""
    avg = average_energy(model).item()
    if avg <= target:
        return False
    shift = torch.log(torch.tensor(target / avg))
    for m in model.modules():
        if isinstance(m, NoiseModel):
            m.log_energy.add_(shift)
    return True


@torch.no_grad()
def set_uniform_energy(model: nn.Module, e_mac: float) -> None:
    """Give every noise model (and channel) the same energy."""
    for m in model.modules():
        if isinstance(m, NoiseModel):
            m.set_energy(e_mac)


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
