"""Affine fake quantization with a straight-through estimator (STE).

For ``b`` bits and range [lo, hi]:

* asymmetric: q in [0, 2^b - 1], scale s = (hi - lo) / (2^b - 1), zero point
  z = round(-lo / s) (the range is widened to contain 0 so that zero is exact);
* symmetric: q in [-(2^(b-1) - 1), 2^(b-1) - 1], s = max(|lo|, |hi|) / (2^(b-1) - 1), z = 0.

fake_quant(x) = (clamp(round(x / s) + z, q_min, q_max) - z) * s, with round's gradient
taken as 1 (STE). The full range of the quantizer, R = (q_max - q_min) * s, is what the
thermal-noise formula uses.
"""
from __future__ import annotations

from typing import Union

import torch

from noisesim.ops import round_ste

Bits = Union[float, torch.Tensor]
MIN_SCALE = 1e-8


def level_bounds(bits: Bits, symmetric: bool) -> tuple[Bits, Bits]:
    """(q_min, q_max) for ``bits`` (float, or a tensor for learnable / per-channel bits)."""
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        return -qmax, qmax
    return 0 * bits, 2 ** bits - 1


def qparams(lo: torch.Tensor, hi: torch.Tensor, bits: Bits, symmetric: bool):
    """Scale, zero point (float, integer-valued), q_min and q_max for the range [lo, hi]."""
    qmin, qmax = level_bounds(bits, symmetric)
    if symmetric:
        scale = torch.maximum(lo.abs(), hi.abs()) / qmax
        return scale.clamp_min(MIN_SCALE), torch.zeros_like(scale), qmin, qmax
    lo, hi = torch.clamp(lo, max=0), torch.clamp(hi, min=0)
    scale = ((hi - lo) / qmax).clamp_min(MIN_SCALE)
    zp = round_ste(-lo / scale)  # in [0, q_max] because lo <= 0 <= hi
    return scale, zp, qmin, qmax


def fake_quant_ste(x: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, qmin: Bits, qmax: Bits) -> torch.Tensor:
    """(clamp(round(x / s) + z, q_min, q_max) - z) * s with STE rounding; all broadcastable."""
    q = round_ste(x * (1.0 / scale)) + zp  # same order of operations as torch.fake_quantize_*
    if torch.is_tensor(qmin) or torch.is_tensor(qmax):  # learnable bits: the bounds get the clipped gradient
        qmin, qmax = torch.as_tensor(qmin, dtype=q.dtype), torch.as_tensor(qmax, dtype=q.dtype)
        q = torch.where(q < qmin, qmin, torch.where(q > qmax, qmax, q))
    else:
        q = q.clamp(qmin, qmax)
    return (q - zp) * scale


def full_range(scale: torch.Tensor, bits: Bits, symmetric: bool) -> torch.Tensor:
    """R = (q_max - q_min) * s: the span of the quantizer's grid."""
    qmin, qmax = level_bounds(bits, symmetric)
    return (qmax - qmin) * scale
