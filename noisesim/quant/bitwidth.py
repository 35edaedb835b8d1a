"""Learnable bit-width: the parameter is log2(bits), one per layer or per channel.

forward() returns the bits used by the quantizer, 2 <= bits <= 16, rounded by a
straight-through estimator according to ``rounding``:

* ``none``       continuous bits (2^b - 1 levels need not be an integer: a relaxation);
* ``round``      nearest integer;
* ``discrete``   nearest of {2, 4, 8} in log2 space;
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
        """(remainder, next level) of each element: with x = b (log2 b for ``discrete``), the remainder
        x - x_nearest and the rounding level one above the nearest (inf at the top: 16, or 8 for
        ``discrete``). Continuous bits (``none``) have no levels: remainder 0, next level inf."""
        bits = torch.exp2(self.log2_bits).clamp(MIN_BITS, MAX_BITS)
        if self.rounding == "none":
            return torch.zeros_like(bits), torch.full_like(bits, math.inf)
        nearest = self._nearest(bits)
        top = 8 if self.rounding == "discrete" else MAX_BITS
        step_up = nearest * 2 if self.rounding == "discrete" else nearest + 1
        remainder = torch.log2(bits / nearest) if self.rounding == "discrete" else bits - nearest
        return remainder, torch.where(nearest < top, step_up, torch.full_like(bits, math.inf))

    def extra_repr(self) -> str:
        with torch.no_grad():
            b = self.forward()
        shown = f"{b.item():.2f}" if b.numel() == 1 else f"per-channel({b.numel()}) mean {b.mean().item():.2f}"
        return f"bits={shown} rounding={self.rounding} learnable"
