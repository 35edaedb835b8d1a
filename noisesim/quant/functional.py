"""Affine fake quantization with a straight-through estimator (STE).

For ``b`` bits and range [lo, hi]:

* asymmetric: q in [0, 2^b - 1], scale s = (hi - lo) / (2^b - 1), zero point
  z = round(-lo / s) (the range is widened to contain 0 so that zero is exact);
* symmetric: q in [-(2^(b-1) - 1), 2^(b-1) - 1], s = max(|lo|, |hi|) / (2^(b-1) - 1), z = 0.

fake_quant(x) = (clamp(round(x / s) + z, q_min, q_max) - z) * s, with round's gradient
taken as 1 (STE). The full range of the quantizer, R = (q_max - q_min) * s, is what the
thermal-noise formula uses.

A learnable range [lo, hi] learns in one of three ways (``QuantConfig.learning``):

* ``ste``: the gradient of fake_quant with respect to s through the STE above (inside the range
  round(x/s) - x/s, outside q_min - z or q_max - z);
* ``lsq`` (Esser et al. 2020, "Learned step size quantization"): v = x/s + z is clipped to
  [q_min, q_max] before rounding, so that d out / d s = round(v) - v strictly inside the range and
  q_min - z or q_max - z outside (the paper's eq. 3; the STE above counts values that round onto a
  bound as clipped), scaled by g = 1 / sqrt(N · q_max), N the number of values that share the
  step, so that the step learns at the pace of the values it quantizes;
* ``pact`` (Choi et al. 2018, "PACT"): y = clamp(x, lo, hi) is quantized with the rounding error
  treated as a constant, so d out / d hi = 1 where x > hi (and d out / d lo = 1 where x < lo), and
  d out / d x = 1 inside the range, 0 outside.
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


def scale_gradient(t: torch.Tensor, g: float) -> torch.Tensor:
    """``t`` in the forward pass, its gradient times ``g`` in the backward pass."""
    return (t - t * g).detach() + t * g


def lsq_gradient_scale(values_per_step: int, qmax: Bits) -> float:
    """LSQ's g = 1 / sqrt(N * q_max) for N values sharing one step."""
    q = float(torch.as_tensor(qmax).float().mean())
    return 1.0 / max(values_per_step * max(q, 1.0), 1.0) ** 0.5


def lsq_fake_quant(x: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, qmin: Bits, qmax: Bits) -> torch.Tensor:
    """(round(clamp(x / s + z, q_min, q_max)) - z) * s: the same values as ``fake_quant_ste``, LSQ's gradients."""
    v = x * (1.0 / scale) + zp
    if torch.is_tensor(qmin) or torch.is_tensor(qmax):
        qmin, qmax = torch.as_tensor(qmin, dtype=v.dtype), torch.as_tensor(qmax, dtype=v.dtype)
        v = torch.where(v < qmin, qmin, torch.where(v > qmax, qmax, v))
    else:
        v = v.clamp(qmin, qmax)
    return (round_ste(v) - zp) * scale


def pact_fake_quant(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor,
                    qmin: Bits, qmax: Bits) -> torch.Tensor:
    """clamp(x, lo, hi) quantized on the grid (scale, zp), the rounding error a constant (PACT's gradient)."""
    y = torch.where(x < lo, lo, torch.where(x > hi, hi, x))  # ties (ReLU zeros at lo = 0) leave lo alone
    with torch.no_grad():
        err = fake_quant_ste(y, scale, zp, qmin, qmax) - y
    return y + err
