"""Learnable bit-width: the parameter is log2(bits), one per layer or per channel.

forward() returns the bits used by the quantizer, 2 <= bits <= 16, rounded by a
straight-through estimator according to ``rounding``:

* ``none``       continuous bits (2^b - 1 levels need not be an integer: a relaxation);
* ``round``      nearest integer;
* ``discrete``   nearest of {2, 4, 8} in log2 space (switching at 2.83 and 5.66 bits, the geometric midpoints:
                 the parameter is log2 bits, and each level doubles the one below);
* ``discrete_linear`` nearest of {2, 4, 8} by linear distance (switching at 3 and 6 bits: the reference
                 implementation's rule, for reproducing its numbers);
* ``stochastic`` floor(b) + Bernoulli(b - floor(b)) while training, nearest integer in eval.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from noisesim.config import MAX_BITS, MIN_BITS
from noisesim.ops import ste


class BitWidth(nn.Module):
    def __init__(self, bits: float, channels: int = 1, rounding: str = "round"):
        super().__init__()
        self.log2_bits = nn.Parameter(torch.full((channels,), math.log2(bits)))
        self.rounding = rounding

    @torch.no_grad()
    def set_bits(self, bits: float | torch.Tensor) -> None:
        """Set the bits (one value, or one per channel)."""
        b = torch.as_tensor(bits, dtype=self.log2_bits.dtype).clamp(MIN_BITS, MAX_BITS)
        self.log2_bits.copy_(torch.log2(b).expand_as(self.log2_bits))

    def _nearest(self, bits: torch.Tensor) -> torch.Tensor:
        """The level ``bits`` rounds to outside training: nearest integer, or nearest of {2, 4, 8}."""
        if self.rounding == "discrete":
            return torch.exp2(torch.round(torch.log2(bits)).clamp(1, 3))
        if self.rounding == "discrete_linear":
            return torch.where(bits < 3, 2.0, torch.where(bits < 6, 4.0, 8.0)).to(bits.dtype)
        return torch.round(bits)

    def forward(self) -> torch.Tensor:
        bits = torch.exp2(self.log2_bits).clamp(MIN_BITS, MAX_BITS)
        if self.rounding == "stochastic" and self.training:
            floor = torch.floor(bits)
            return ste(bits, floor + (torch.rand_like(bits) < bits - floor).float())
        if self.rounding == "none":
            return bits
        return ste(bits, self._nearest(bits))

    @torch.no_grad()
    def remainders(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(remainder, next level) of each element: the remainder is b - b_nearest in units of the gap to the
        neighbouring level (in log2 b for ``discrete``), within [-1/2, 1/2); the next level is the one above the
        nearest (inf at the top: 16, or 8 for the discrete roundings). Continuous bits (``none``) have no levels:
        remainder 0, next level inf."""
        bits = torch.exp2(self.log2_bits).clamp(MIN_BITS, MAX_BITS)
        if self.rounding == "none":
            return torch.zeros_like(bits), torch.full_like(bits, math.inf)
        nearest = self._nearest(bits)
        discrete = self.rounding in ("discrete", "discrete_linear")
        top = 8 if discrete else MAX_BITS
        step_up = nearest * 2 if discrete else nearest + 1
        if self.rounding == "discrete":
            remainder = torch.log2(bits / nearest)
        elif self.rounding == "discrete_linear":  # gaps: the level itself above it, half of it below
            remainder = (bits - nearest) / torch.where(bits >= nearest, nearest, nearest / 2)
        else:
            remainder = bits - nearest
        return remainder, torch.where(nearest < top, step_up, torch.full_like(bits, math.inf))

    def extra_repr(self) -> str:
        with torch.no_grad():
            b = self.forward()
        shown = f"{b.item():.2f}" if b.numel() == 1 else f"per-channel({b.numel()}) mean {b.mean().item():.2f}"
        return f"bits={shown} rounding={self.rounding} learnable"
