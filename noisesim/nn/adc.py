"""ADC: the converter that reads out every analog partial sum of a layer.

A b-bit symmetric converter over [-r, r]: levels k s for integer |k| <= 2^(b-1) - 1, step
s = r / (2^(b-1) - 1); values beyond the last level clip to it. Its quantization noise has variance
about (2r)^2 4^(-b) / 12. The range r is set by a rule (``HardwareConfig.adc_range``):

* ``minmax`` / ``percentile``: observed on the partial sums while the model calibrates (noise off);
* ``full_scale``: the largest value a tile can produce, r = N max|w| max|x| (N the rows a tile sums,
  max|w| and max|x| the bounds of the weight and input quantizers), set by the layer.

Every conversion outside calibration is counted, and so is every one that clips (|p| > r), so that
reports give the clipping rate (aihwkit calls b and r ``out_res`` and ``out_bound``).
"""
from __future__ import annotations

import torch
from torch import nn

from noisesim.config import HardwareConfig, QuantConfig
from noisesim.quant.fake_quant import FakeQuantize


class ADC(nn.Module):
    def __init__(self, cfg: HardwareConfig):
        super().__init__()
        self.rule = cfg.adc_range
        observer = "percentile" if cfg.adc_range == "percentile" else "minmax"
        self.quant = FakeQuantize(QuantConfig(bits=cfg.adc_bits, symmetric=True, observer=observer,
                                              percentile=cfg.percentile))
        self.register_buffer("clipped", torch.zeros((), dtype=torch.float64))
        self.register_buffer("conversions", torch.zeros((), dtype=torch.float64))

    @property
    def bits(self) -> float:
        """The bits in use (whole bits; the rounded value of a learnable bit-width)."""
        return self.quant.mean_bits()

    def bound(self) -> torch.Tensor:
        """r: the largest magnitude the converter represents."""
        return torch.maximum(self.quant.lo.abs(), self.quant.hi.abs()).max()

    @torch.no_grad()
    def set_bound(self, r: torch.Tensor | float) -> None:
        """Use the range [-r, r] from now on (the ``full_scale`` rule)."""
        r = torch.as_tensor(r, dtype=self.quant.hi.dtype, device=self.quant.hi.device)
        self.quant.lo.copy_(-r.expand_as(self.quant.lo))
        self.quant.hi.copy_(r.expand_as(self.quant.hi))
        self.quant.calibrated.fill_(True)
        self.quant.touch()

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        """The converted partial sums (during calibration: ``p`` itself, observed)."""
        if not self.quant.calibrating and not torch.compiler.is_compiling():
            self._count(p.detach())
        return self.quant(p)

    def convert_and_sum(self, p: torch.Tensor) -> torch.Tensor:
        """The converted partial sums (T, *output) summed over the tiles. Outside autograd, the codes are summed as
        integers and scaled once (the same values, one pass fewer over the partial sums)."""
        q = self.quant
        if torch.is_grad_enabled() or not q.enabled or q.calibrating or q.export_form or q.learnable \
                or p.dtype != torch.float32 or not float(q.cfg.bits).is_integer() or torch.compiler.is_compiling():
            return self(p).sum(0)
        if not q.is_calibrated():
            raise RuntimeError("ADC used before calibration: run noisesim.calibrate(model, batches)")
        self._count(p)
        _, _, qmin, qmax, s, _ = q._fused_qparams()
        return torch.mul(p, 1.0 / s).round_().clamp_(qmin, qmax).sum(0).mul_(s)

    @torch.no_grad()
    def _count(self, p: torch.Tensor) -> None:
        r = self.bound()
        self.conversions += p.numel()
        if not p.is_cuda:  # one pass finds whether anything clips (mostly nothing does); count only then
            lo, hi = torch.aminmax(p)
            if not (hi > r or lo < -r):
                return
        self.clipped += (p.abs() > r).sum()

    def clip_rate(self) -> float:
        """The fraction of the conversions counted so far that clipped (NaN before any)."""
        n = float(self.conversions)
        return float(self.clipped) / n if n else float("nan")

    def reset_counts(self) -> None:
        self.clipped.zero_()
        self.conversions.zero_()

    def extra_repr(self) -> str:
        return f"{self.bits:g} bits, range {self.rule}"
