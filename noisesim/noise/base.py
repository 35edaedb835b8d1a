"""Base class of the analog noise models.

A noise model owns the energy per MAC E of one layer — a learnable log-energy, one value
per layer or per output channel — and adds zero-mean Gaussian noise whose standard
deviation its subclass derives from E and from the ``scale`` the layer passes in
explicitly (``noise(y, scale=...)``). Noise is active in train and eval mode alike (it is
the hardware); it is off inside ``noise_disabled(model)`` and during calibration, when the
model only records the range of the tensor it would perturb.

Averaging k repeated analog evaluations divides the variance by k; a continuous E is the
limit of that, and ``quantize_energy`` rounds E to whole repeats (photons) with a
straight-through estimator (E >= 1).
"""
from __future__ import annotations

import abc
import math
from typing import Optional

import torch
from torch import nn

from noisesim.config import NoiseConfig
from noisesim.noise.sampler import GaussianSampler
from noisesim.quant.functional import round_ste


class NoiseModel(nn.Module, abc.ABC):
    kind = "none"

    def __init__(self, cfg: NoiseConfig, fan_in: int, channels: int, channel_dim: int):
        super().__init__()
        self.cfg, self.fan_in, self.channels, self.channel_dim = cfg, fan_in, channels, channel_dim
        n = channels if cfg.per_channel else 1
        self.log_energy = nn.Parameter(torch.full((n,), math.log(cfg.e_mac)), requires_grad=cfg.learnable)
        self.enabled = True
        self.calibrating = False
        self.register_buffer("out_lo", torch.tensor(float("inf")))
        self.register_buffer("out_hi", torch.tensor(float("-inf")))
        # per output channel, summed over recorded forwards
        self.register_buffer("signal_power", torch.zeros(channels, dtype=torch.float64))
        self.register_buffer("noise_power", torch.zeros(channels, dtype=torch.float64))
        self.as_quantizer = cfg.replace_with_quantizer  # see noisesim.context.noise_as_quantizer
        self.register_buffer("last_std", torch.full((channels,), float("nan")))  # RMS sigma per channel
        self.sampler = GaussianSampler(cfg.seed)

    # -- energy ---------------------------------------------------------------
    def energy(self) -> torch.Tensor:
        """E in photons per MAC, one value or one per output channel."""
        e = torch.exp(self.log_energy)
        if self.cfg.quantize_energy:
            e = e + (torch.round(e).clamp_min(1.0) - e).detach()
        return e

    @torch.no_grad()
    def set_energy(self, e_mac: float | torch.Tensor) -> None:
        e = torch.as_tensor(e_mac, dtype=self.log_energy.dtype)
        if not bool((e > 0).all()):
            raise ValueError(f"energy must be > 0, got {e_mac}")
        self.log_energy.copy_(torch.log(e).expand_as(self.log_energy))

    def _along_channels(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        if t.numel() == 1:
            return t.reshape(())
        shape = [1] * ndim
        shape[self.channel_dim] = -1
        return t.reshape(shape)

    # -- noise ----------------------------------------------------------------
    @abc.abstractmethod
    def std(self, scale: torch.Tensor, ndim: int, fan_in: int) -> torch.Tensor:
        """Standard deviation of the noise, broadcastable to the perturbed tensor."""

    def forward(self, y: torch.Tensor, scale: Optional[torch.Tensor], fan_in: Optional[int] = None,
                inplace: bool = False) -> torch.Tensor:
        """``y`` plus noise of the subclass's std; ``fan_in`` overrides D (matmuls of varying size).

        ``inplace``: the caller owns ``y`` (a fresh layer output) and, when no gradient is
        needed, the noise is added to it in place."""
        if self.calibrating:
            with torch.no_grad():
                self.out_lo = torch.minimum(self.out_lo, y.min().float())
                self.out_hi = torch.maximum(self.out_hi, y.max().float())
            return y
        if not self.enabled:
            return y
        std = self.std(scale, y.dim(), fan_in or self.fan_in)
        if self.cfg.record_snr or self.as_quantizer or std.numel() <= self.channels:
            self._record(y, std)
        if self.as_quantizer:
            return self.equivalent_quantizer(y)
        noise = self.sampler.sample(y.shape, y.device, y.dtype)
        if not inplace or (torch.is_grad_enabled() and (y.requires_grad or std.requires_grad)):
            return torch.addcmul(y, noise, std)
        return y.addcmul_(noise, std)  # one pass, no new tensor

    def _per_channel(self, t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """Mean of ``t`` (broadcast to ``shape``) over everything but the output channels."""
        t = t.expand(shape)
        if self.channels == 1:
            return t.reshape(1, -1).mean(1)
        return t.movedim(self.channel_dim, 0).reshape(self.channels, -1).mean(1)

    @torch.no_grad()
    def _record(self, y: torch.Tensor, std: torch.Tensor) -> None:
        var = std.detach().float().pow(2)
        var = self._per_channel(var, y.shape) if var.numel() > self.channels else var.reshape(-1).expand(
            self.channels)  # data-dependent sigma (shot noise): averaged over all but channels
        self.last_std.copy_(var.sqrt())
        if self.cfg.record_snr:
            self.signal_power += self._per_channel(y.detach().double().pow(2), y.shape)
            self.noise_power += var.double()

    def snr(self) -> float:
        """Recorded signal power over noise power of the whole layer (linear), NaN when nothing was recorded."""
        if float(self.noise_power.sum()) == 0:
            return float("nan")
        return float(self.signal_power.sum() / self.noise_power.sum())

    def channel_snr(self) -> torch.Tensor:
        """Recorded signal over noise power per output channel (NaN where nothing was recorded)."""
        return torch.where(self.noise_power > 0, self.signal_power / self.noise_power, float("nan")).float()

    def reset_snr(self) -> None:
        self.signal_power.zero_()
        self.noise_power.zero_()

    # -- noise bits -----------------------------------------------------------
    def output_range(self) -> float:
        """R_out: the calibrated span of the perturbed tensor."""
        return float(self.out_hi - self.out_lo)

    def noise_bits(self) -> torch.Tensor:
        """ENOB equivalent: bits = log2(ceil(R_out / (sqrt(12) sigma)) + 1), per layer or channel."""
        steps = torch.ceil(self.output_range() / (math.sqrt(12) * self.last_std)).clamp_min(1)
        return torch.log2(steps + 1)

    def equivalent_quantizer(self, y: torch.Tensor) -> torch.Tensor:
        """Uniform quantization over [out_lo, out_hi] whose step/sqrt(12) equals sigma (the noise bits)."""
        if not math.isfinite(self.output_range()):
            raise RuntimeError("noise bits need the calibrated output range: run noisesim.calibrate first")
        lo = self.out_lo.to(y.dtype)
        steps = torch.ceil(self.output_range() / (math.sqrt(12) * self.last_std)).clamp_min(1)
        step = self._along_channels(self.output_range() / steps, y.dim()).to(y.dtype)
        return lo + round_ste((y.clamp(lo, self.out_hi.to(y.dtype)) - lo) / step) * step

    def extra_repr(self) -> str:
        e = self.energy().detach()
        energy = f"E={e.item():.4g}" if e.numel() == 1 else f"E=per-channel({e.numel()}) mean {e.mean().item():.4g}"
        sigma = f" sigma={self.cfg.sigma:g}" if self.kind != "shot" else ""
        flags = "".join([" learnable" if self.log_energy.requires_grad else "",
                         " integer-E" if self.cfg.quantize_energy else "",
                         " as-quantizer" if self.as_quantizer else "",
                         "" if self.enabled else " disabled"])
        return f"{self.kind}{sigma} {energy} D={self.fan_in}{flags}"
