"""Several noise sources at once on one layer (``--noise_type thermal+shot``).

Independent zero-mean sources add their variances. Every source reads the same energy per MAC E
(the sum owns the one learnable log-energy), so for the sources acting on the output

    sigma^2 = sum_i sigma_i(E)^2,      e.g. thermal+shot: (sigma_t R_w R_x)^2 D / E + ||x|| ^2 ||w||^2 / (D E)

and, since each sigma_i^2 is proportional to 1/E, so is the sum: the allocation methods treat the sum as
one noise model. Sources that act on the weights (``weight``) are drawn on the weights with their own
summed variance; a layer without weights (a product of two activations) keeps only the output sources.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from noisesim.config import NoiseConfig
from noisesim.noise.base import NoiseModel, Operands


class NoiseSum(NoiseModel):
    """The sum of independent noise models on one layer, at one energy; ``sources``: (name, class) pairs."""

    def __init__(self, cfg: NoiseConfig, fan_in: int, channels: int, channel_dim: int,
                 sources: list[tuple[str, type]]):
        super().__init__(cfg, fan_in, channels, channel_dim)
        parts = []
        for name, cls in sources:
            part = cls(dataclasses.replace(cfg, kind=name, learnable=False), fan_in, channels,
                       0 if cls.acts_on == "weight" else channel_dim)
            part.__dict__["_energy_owner"] = self  # reads this model's energy (not a child module: no parameters)
            parts.append(part)
        self.parts = tuple(parts)  # a tuple: the parts are not registered as children
        self.output_parts = tuple(p for p in parts if p.acts_on == "output")
        self.weight_parts = tuple(p for p in parts if p.acts_on == "weight")
        self.acts_on = ("both" if self.output_parts and self.weight_parts else
                        "output" if self.output_parts else "weight")
        if self.acts_on == "weight":
            self.channel_dim = 0
        self.tile_additive = all(p.tile_additive for p in self.output_parts)

    @property
    def sigma(self) -> Optional[float]:
        return None

    def std(self, ops: Operands, ndim: int) -> torch.Tensor:
        """sqrt(sum of the variances) of the sources on the perturbed tensor (the output, or the weights when
        every source acts on them)."""
        return _root_sum_square(self.output_parts or self.weight_parts, ops, ndim)

    def perturb_weight(self, w: torch.Tensor, ops: Operands) -> torch.Tensor:
        """The weights plus the weight sources' noise (for a sum that also acts on the output)."""
        if self.calibrating or not self.enabled or self.as_quantizer:
            return w
        if self.probe is not None:
            raise RuntimeError(f"{self.kind}: the sensitivity estimators probe one tensor per layer; a sum with "
                               "weight noise perturbs two (estimate with trained allocations instead)")
        std = _root_sum_square(self.weight_parts, ops, w.dim())
        return torch.addcmul(w, self.sampler.sample(w.shape, w.device, w.dtype), std)


def _root_sum_square(parts: tuple[NoiseModel, ...], ops: Operands, ndim: int) -> torch.Tensor:
    """sqrt(sum_i std_i^2); in place on one new tensor (the largest) when no gradient is taken."""
    stds = sorted((p.std(ops, ndim) for p in parts), key=torch.Tensor.numel, reverse=True)
    if torch.is_grad_enabled():
        return sum(s.square() for s in stds).sqrt()
    total = stds[0].square()
    for s in stds[1:]:
        total = total.addcmul_(s, s) if torch.broadcast_shapes(total.shape, s.shape) == total.shape else \
            torch.addcmul(total, s, s)
    return total.sqrt_()

