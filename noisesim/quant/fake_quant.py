"""FakeQuantize: a calibrated affine fake quantizer (see ``noisesim.quant.functional``).

Modes: ``calibrating`` (the observer watches, values pass through unchanged; see
``start_calibration`` / ``stop_calibration``), frozen (quantizes with the stored range),
disabled (``bits=None``, or ``disable()``: identity). A ``dynamic`` quantizer needs no
calibration: it takes the range of every row (token) of each input at run time, reducing over
``token_axis`` (-1: the features of each token; -2: the rows of a right-hand matmul operand,
one range per output column). With a fixed
integer bit-width and a fixed range it calls PyTorch's fused
``torch.fake_quantize_per_tensor_affine`` / ``..._per_channel_affine`` (STE gradient
for the input); learnable ranges or bit-widths take the differentiable STE path.
"""
from __future__ import annotations

from typing import Optional

import dataclasses

import torch
from torch import nn

from noisesim.config import QuantConfig
from noisesim.quant.bitwidth import BitWidth
from noisesim.quant.functional import (fake_quant_ste, full_range, level_bounds, lsq_fake_quant,
                                      lsq_gradient_scale, pact_fake_quant, qparams, scale_gradient)
from noisesim.ops import along_dim
from noisesim.quant.observers import make_observer


class FakeQuantize(nn.Module):
    """Fake quantizer for a tensor whose channels lie on ``ch_axis``.

    ``channels`` is the size of that axis; it sizes per-channel ranges and per-channel
    learnable bit-widths. ``lo`` / ``hi`` hold the range (parameters when learnable).
    """

    def __init__(self, cfg: QuantConfig, channels: int = 1, ch_axis: int = 0, token_axis: int = -1):
        super().__init__()
        self.cfg, self.ch_axis, self.channels, self.token_axis = cfg, ch_axis, channels, token_axis
        self._dynamic_range: Optional[torch.Tensor] = None
        n_range = channels if cfg.per_channel else 1
        self.observer = make_observer(cfg, ch_axis if cfg.per_channel else None)
        lo, hi = torch.zeros(n_range), torch.ones(n_range)
        if cfg.learnable_range:
            self.lo, self.hi = nn.Parameter(lo), nn.Parameter(hi)
        else:
            self.register_buffer("lo", lo)
            self.register_buffer("hi", hi)
        self.bitwidth = (BitWidth(cfg.bits, channels if cfg.per_channel_bits else 1, cfg.bit_rounding)
                         if cfg.learnable_bits else None)
        self.register_buffer("calibrated", torch.tensor(False))
        self.calibrating = False
        self._on = True
        self.version = 0  # bumped when the range or bits change; lets layers cache quantized weights
        self._fused: Optional[tuple] = None
        self._ready = False  # Python copy of ``calibrated`` once it is True (no tensor read per forward)
        self.export_form = False  # set by noisesim.export.onnx while exporting: the fused, exportable ops

    @property
    def enabled(self) -> bool:
        """Quantizing: it has a bit-width and is switched on."""
        return self.cfg.bits is not None and self._on

    def enable(self, on: bool = True) -> None:
        self._on = on

    def disable(self) -> None:
        self._on = False

    def start_calibration(self) -> None:
        """Forget the observed range and observe from now on (values pass through unquantized)."""
        self.observer.reset()
        self.calibrating = True

    def stop_calibration(self, freeze: bool = True) -> None:
        """Stop observing; with ``freeze``, take the observed range (if anything was observed)."""
        self.calibrating = False
        if freeze and self.observer.batches:
            self.freeze()

    @torch.no_grad()
    def set_bits(self, bits: float | torch.Tensor) -> None:
        """Use ``bits`` from now on (learnable bit-widths are set to it; fixed ones replace the config)."""
        if self.bitwidth is not None:
            self.bitwidth.set_bits(bits)
        else:
            self.cfg = dataclasses.replace(self.cfg, bits=float(torch.as_tensor(bits).float().mean()))
        self.touch()

    @property
    def learnable(self) -> bool:
        return self.cfg.learnable_range or self.bitwidth is not None

    def bits(self) -> torch.Tensor | float:
        """Bits in use: a float, or a tensor (one value, or one per channel) when learnable."""
        return self.bitwidth() if self.bitwidth is not None else self.cfg.bits

    def mean_bits(self) -> float:
        if not self.enabled:
            return float("nan")
        b = self.bits()
        return float(b.detach().mean()) if torch.is_tensor(b) else float(b)

    def _shape(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        return along_dim(t, ndim, self.ch_axis)

    @torch.no_grad()
    def freeze(self) -> None:
        """Take the observer's range and stop observing."""
        lo, hi = self.observer.range()
        self.lo.data.copy_(lo.to(self.lo))
        self.hi.data.copy_(hi.to(self.hi))
        self.calibrated.fill_(True)
        self.calibrating = False
        self.touch()

    def touch(self) -> None:
        """Mark the range as changed (drops cached quantized tensors)."""
        self.version += 1
        self._fused = None
        self._ready = False

    def state_key(self) -> Optional[tuple]:
        """A value that changes whenever the quantizer's range, bits or switch may have changed (``touch``, an
        in-place update of the range or bit parameters, a move to another device); None for an enabled dynamic
        quantizer, whose range follows every input."""
        if self.cfg.dynamic and self.enabled:
            return None
        key = (self.version, self._on, self.lo._version, self.hi._version, self.lo.data_ptr(), self.hi.data_ptr())
        if self.bitwidth is not None:
            key += tuple((p._version, p.data_ptr()) for p in self.bitwidth.parameters())
        return key

    def is_calibrated(self) -> bool:
        if not self._ready:
            self._ready = bool(self.calibrated)
        return self._ready

    def _fused_qparams(self):
        """(scale, zero point, q_min, q_max, and for one scale its value and zero point as Python numbers)."""
        if self._fused is None:
            scale, zp, qmin, qmax = qparams(self.lo.detach(), self.hi.detach(), self.cfg.bits, self.cfg.symmetric)
            scale, zp = scale.float(), zp.round().to(torch.int32)
            one = (scale.item(), int(zp.item())) if scale.numel() == 1 else (None, None)
            self._fused = (scale, zp, int(qmin), int(qmax), *one)
        return self._fused

    def _quantize_no_grad(self, x, scale, zp, qmin, qmax, s=None, z=None) -> torch.Tensor:
        """Bit-identical to torch's fused op without its backward mask: round(x * (1/s)) clipped to
        [q_min - z, q_max - z], times s (in place on one new tensor; several times faster on CPU)."""
        if scale.numel() == 1:  # 1/s in double, then rounded to float: the float reciprocal exactly
            return torch.mul(x, 1.0 / s).round_().clamp_(qmin - z, qmax - z).mul_(s)
        s = self._shape(scale, x.dim())
        z = self._shape(zp, x.dim()).to(x.dtype)
        return torch.mul(x, 1.0 / s).round_().clamp_(qmin - z, qmax - z).mul_(s)

    def _dynamic(self, x: torch.Tensor) -> torch.Tensor:
        """Quantize every row (token) over its own [min, max] (or +-max|x| when symmetric)."""
        lo = x.detach().amin(self.token_axis, keepdim=True)
        hi = x.detach().amax(self.token_axis, keepdim=True)
        bits = self.bits()
        scale, zp, qmin, qmax = qparams(lo, hi, bits, self.cfg.symmetric)
        self._dynamic_range = full_range(scale, bits, self.cfg.symmetric)
        return fake_quant_ste(x, scale, zp, qmin, qmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        if self.calibrating:
            if not self.cfg.dynamic:
                self.observer.update(x)
            return x
        if self.cfg.dynamic:
            return self._dynamic(x)
        if self.export_form:
            return self._exportable(x)
        if not self.is_calibrated():
            raise RuntimeError("fake quantizer used before calibration: run noisesim.calibrate(model, batches)")
        fixed = not self.learnable and float(self.cfg.bits).is_integer()
        if fixed and x.dtype == torch.float32:
            scale, zp, qmin, qmax, s, z = self._fused_qparams()
            if not (torch.is_grad_enabled() and x.requires_grad):
                return self._quantize_no_grad(x, scale, zp, qmin, qmax, s, z)
            if scale.numel() == 1:
                return torch.fake_quantize_per_tensor_affine(x, scale.reshape(()), zp.reshape(()), qmin, qmax)
            return torch.fake_quantize_per_channel_affine(x, scale, zp, self.ch_axis, qmin, qmax)
        nd = x.dim()
        bits = self.bits()
        if torch.is_tensor(bits):
            bits = self._shape(bits, nd)
        lo, hi = self._shape(self.lo, nd), self._shape(self.hi, nd)
        learning = self.cfg.learning if self.cfg.learnable_range else "ste"
        if learning == "lsq":
            g = lsq_gradient_scale(x.numel() // max(self.lo.numel(), 1),
                                   level_bounds(self.mean_bits(), self.cfg.symmetric)[1])
            lo, hi = scale_gradient(lo, g), scale_gradient(hi, g)
        scale, zp, qmin, qmax = qparams(lo, hi, bits, self.cfg.symmetric)
        if learning == "pact":
            return pact_fake_quant(x, lo, hi, scale, zp, qmin, qmax)
        if learning == "lsq":
            return lsq_fake_quant(x, scale, zp, qmin, qmax)
        return fake_quant_ste(x, scale, zp, qmin, qmax)

    def _exportable(self, x: torch.Tensor) -> torch.Tensor:
        """This fake quantization written with the fused ops PyTorch's ONNX exporter turns into QuantizeLinear /
        DequantizeLinear: in an 8-bit container (int8 or uint8), behind a clamp to this quantizer's own grid,
        [s (q_min - z), s (q_max - z)], when that grid is narrower (``noisesim.export.onnx``)."""
        scale, zp, qmin, qmax = qparams(self.lo.detach(), self.hi.detach(), self.cfg.bits, self.cfg.symmetric)
        scale, zp = scale.float(), zp.round().to(torch.int32)
        lo8, hi8 = (-128, 127) if qmin < 0 else (0, 255)
        if (int(qmin), int(qmax)) != (lo8, hi8):
            s = self._shape(scale, x.dim()) if scale.numel() > 1 else scale
            z = self._shape(zp, x.dim()).float() if zp.numel() > 1 else zp.float()
            x = torch.maximum(torch.minimum(x, s * (int(qmax) - z)), s * (int(qmin) - z))
        if scale.numel() == 1:
            return torch.fake_quantize_per_tensor_affine(x, scale.reshape(()), zp.reshape(()), lo8, hi8)
        return torch.fake_quantize_per_channel_affine(x, scale, zp, self.ch_axis, lo8, hi8)

    def full_range(self) -> torch.Tensor:
        """R = (q_max - q_min) * scale: one value, or one per channel (per-channel ranges or bits); for a
        dynamic quantizer, one per row of its last input (broadcastable to a matmul's output)."""
        if self.cfg.dynamic:
            if self._dynamic_range is None:
                raise RuntimeError("a dynamic quantizer knows its ranges only after a forward")
            return self._dynamic_range
        bits = self.bits()
        scale, _, _, _ = qparams(self.lo, self.hi, bits, self.cfg.symmetric)
        return full_range(scale, bits, self.cfg.symmetric)

    def extra_repr(self) -> str:
        if not self.enabled:
            return "off"
        bits = f"{self.mean_bits():.3g}b" + (" learnable" if self.bitwidth is not None else "")
        kind = "sym" if self.cfg.symmetric else "asym"
        gran = f"per-channel({self.lo.numel()})" if self.cfg.per_channel else "per-tensor"
        if self.cfg.dynamic:
            return f"{bits} {kind} dynamic per-token"
        state = "calibrating" if self.calibrating else (
            f"range=[{self.lo.min().item():.4g}, {self.hi.max().item():.4g}]" if self.is_calibrated()
            else "uncalibrated")
        learn = f" learnable-range ({self.cfg.learning})" if self.cfg.learnable_range else ""
        return f"{bits} {kind} {gran} {self.cfg.observer} {state}{learn}"
