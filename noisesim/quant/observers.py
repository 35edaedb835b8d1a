"""Range observers: they watch tensors during calibration and propose a clipping range.

Observers are registered by name (``noisesim.registry.OBSERVERS``): minmax, ema, percentile,
aciq, mse; ``QuantConfig.observer`` names one. Every observer sees a 2-D view ``[channels, samples]`` (one row for per-tensor ranges)
and returns ``(lo, hi)`` per row. Ranges of successive batches are combined as the
observer says: running extremes (min-max), an exponential moving average (EMA), or the
mean over batches (percentile, ACIQ, MSE).
"""
from __future__ import annotations

import abc
import math
from typing import Optional

import torch
from torch import nn

from noisesim.config import QuantConfig
from noisesim.quant.functional import fake_quant_ste, qparams
from noisesim.registry import OBSERVERS

MAX_SAMPLES = 1 << 22  # rows longer than this are strided down before sorting / grid search


def as_rows(x: torch.Tensor, ch_axis: Optional[int]) -> torch.Tensor:
    """``[channels, samples]`` view of ``x`` (one row when ``ch_axis`` is None)."""
    x = x.detach().float()
    if ch_axis is None:
        return x.reshape(1, -1)
    return x.movedim(ch_axis, 0).reshape(x.shape[ch_axis], -1)


def _subsample(rows: torch.Tensor) -> torch.Tensor:
    step = -(-rows.shape[1] // MAX_SAMPLES)
    return rows[:, ::step] if step > 1 else rows


class Observer(nn.Module, abc.ABC):
    """Base class: ``update(x)`` per batch, then ``range()`` gives ``(lo, hi)`` tensors."""

    def __init__(self, ch_axis: Optional[int] = None):
        super().__init__()
        self.ch_axis = ch_axis
        self.register_buffer("lo", torch.empty(0))
        self.register_buffer("hi", torch.empty(0))
        self.batches = 0

    @classmethod
    def from_config(cls, cfg: QuantConfig, ch_axis: Optional[int]) -> "Observer":
        """The observer a quantizer of ``cfg`` uses (subclasses read their own settings from it)."""
        return cls(ch_axis)

    @abc.abstractmethod
    def batch_range(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(lo, hi) per row of one batch."""

    def combine(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        """Default: mean of the per-batch ranges."""
        n = self.batches
        self.lo = (self.lo * n + lo) / (n + 1)
        self.hi = (self.hi * n + hi) / (n + 1)

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        lo, hi = self.batch_range(as_rows(x, self.ch_axis))
        if self.batches == 0:
            self.lo, self.hi = lo, hi
        else:
            self.combine(lo, hi)
        self.batches += 1

    def range(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.batches == 0:
            raise RuntimeError(f"{type(self).__name__} has seen no data: run calibration first")
        return self.lo, self.hi

    def reset(self) -> None:
        self.lo, self.hi, self.batches = self.lo[:0], self.hi[:0], 0


@OBSERVERS.register("minmax")
class MinMaxObserver(Observer):
    """Running minimum and maximum over all batches."""

    def batch_range(self, rows):
        return rows.amin(1), rows.amax(1)

    def combine(self, lo, hi):
        self.lo, self.hi = torch.minimum(self.lo, lo), torch.maximum(self.hi, hi)


@OBSERVERS.register("ema")
class EMAObserver(MinMaxObserver):
    """Exponential moving average of batch extremes: r <- r + c (r_batch - r), c = ``decay``."""

    def __init__(self, ch_axis=None, decay: float = 0.1):
        super().__init__(ch_axis)
        self.decay = decay

    @classmethod
    def from_config(cls, cfg, ch_axis):
        return cls(ch_axis, cfg.ema_decay)

    def combine(self, lo, hi):
        self.lo = self.lo + self.decay * (lo - self.lo)
        self.hi = self.hi + self.decay * (hi - self.hi)


@OBSERVERS.register("percentile")
class PercentileObserver(Observer):
    """The ``100 - p`` and ``p`` percentiles of each batch, averaged over batches."""

    def __init__(self, ch_axis=None, percentile: float = 99.99):
        super().__init__(ch_axis)
        self.percentile = percentile

    @classmethod
    def from_config(cls, cfg, ch_axis):
        return cls(ch_axis, cfg.percentile)

    def batch_range(self, rows):
        rows = _subsample(rows)
        n = rows.shape[1]
        k_hi = max(1, min(n, math.ceil(n * self.percentile / 100)))
        k_lo = max(1, min(n, n + 1 - k_hi))
        return rows.kthvalue(k_lo, 1).values, rows.kthvalue(k_hi, 1).values


def laplace_clip_ratio(bits: float, one_sided: bool) -> float:
    """ACIQ (Banner et al. 2019): the clip alpha/b minimising the MSE of a Laplace(b) tensor.

    Two-sided, 2^M levels over [-alpha, alpha]: MSE = 2 b^2 e^(-alpha/b) + alpha^2 / (3 * 4^M).
    One-sided (e.g. after ReLU), levels over [0, alpha]: MSE = 2 b^2 e^(-alpha/b) + alpha^2 / (12 * 4^M).
    Solved on a fine grid of alpha/b (gives 9.89 for M = 8 two-sided, as in the paper).
    """
    r = torch.linspace(0.1, 80, 80_000, dtype=torch.float64)
    quant = r ** 2 / ((12.0 if one_sided else 3.0) * 4.0 ** bits)
    return float(r[torch.argmin(2 * torch.exp(-r) + quant)])


@OBSERVERS.register("aciq")
class ACIQObserver(Observer):
    """Laplace fit (b = mean |x - mu|) clipped at mu +/- alpha*(bits) b, inside the observed extremes."""

    def __init__(self, ch_axis=None, bits: float = 8):
        super().__init__(ch_axis)
        self.bits = bits

    @classmethod
    def from_config(cls, cfg, ch_axis):
        return cls(ch_axis, cfg.bits or 8)

    def batch_range(self, rows):
        lo, hi = rows.amin(1), rows.amax(1)
        if bool((lo >= 0).all()):  # one-sided: exponential fit on [0, inf)
            b = rows.mean(1)
            alpha = laplace_clip_ratio(self.bits, one_sided=True) * b
            return lo, torch.minimum(hi, alpha)
        mu = rows.mean(1)
        b = (rows - mu[:, None]).abs().mean(1)
        alpha = laplace_clip_ratio(self.bits, one_sided=False) * b
        return torch.maximum(lo, mu - alpha), torch.minimum(hi, mu + alpha)


@OBSERVERS.register("mse")
class MSEObserver(Observer):
    """The clipping range (a fraction of the batch extremes) with least quantization MSE.

    Candidates are ``r * (lo, hi)`` for ``r`` in ``ratios``; each is scored by the mean
    squared error of fake-quantizing the batch at ``bits``; per-batch optima are averaged.
    """

    def __init__(self, ch_axis=None, bits: float = 8, symmetric: bool = False, steps: int = 50):
        super().__init__(ch_axis)
        self.bits, self.symmetric = bits, symmetric
        self.ratios = torch.linspace(0.2, 1.0, steps)

    @classmethod
    def from_config(cls, cfg, ch_axis):
        return cls(ch_axis, cfg.bits or 8, cfg.symmetric)

    def batch_range(self, rows):
        rows = _subsample(rows)
        lo, hi = rows.amin(1), rows.amax(1)
        best_err = torch.full_like(lo, float("inf"))
        best_lo, best_hi = lo.clone(), hi.clone()
        for r in self.ratios:
            c_lo, c_hi = lo * r, hi * r
            scale, zp, qmin, qmax = qparams(c_lo, c_hi, self.bits, self.symmetric)
            q = fake_quant_ste(rows, scale[:, None], zp[:, None], qmin, qmax)
            err = (q - rows).pow(2).mean(1)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best_lo, best_hi = torch.where(better, c_lo, best_lo), torch.where(better, c_hi, best_hi)
        return best_lo, best_hi


def make_observer(cfg: QuantConfig, ch_axis: Optional[int]) -> Observer:
    """The registered observer ``cfg.observer`` for a tensor whose channels lie on ``ch_axis`` (None: per tensor)."""
    return OBSERVERS.get(cfg.observer).from_config(cfg, ch_axis)
