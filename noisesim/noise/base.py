"""Base class of the analog noise models, and what a layer hands them.

A noise model owns the energy per MAC E of one layer — a learnable log-energy, one value
per layer or per output channel — and perturbs one tensor of the layer with zero-mean
Gaussian noise: the pre-activation output (``acts_on = "output"``: thermal, shot) or the
weights (``acts_on = "weight"``). Its subclass states the standard deviation as a function of
E and of the layer's :class:`Operands` (quantizer ranges, receptive-field and weight-row
norms, fan-in), which the layer computes only when the model asks for them. A new noise model
is one file: a subclass with ``std`` and a ``@NOISE_MODELS.register("name")`` line.

A std that reads no norms depends only on the ranges, the fan-in and E. Outside autograd it is
computed once and reused until one of those changes (the layer keys the ranges on its quantizers'
states, the model keys E on its log-energy's version), so that a frozen network's forward pays for
the draw and the add only.

Noise is active in train and eval mode alike (it is the hardware); it is off after
``disable()`` (see ``noisesim.noise_disabled``) and during calibration, when the model only
records the range of the tensor it would perturb (for the noise bits).

Averaging k repeated analog evaluations divides the variance by k; a continuous E is the
limit of that, and ``quantize_energy`` rounds E to whole repeats (photons) with a
straight-through estimator (E >= 1).
"""
from __future__ import annotations

import abc
import math
from typing import Callable, Optional

import torch
from torch import nn

from noisesim.config import NoiseConfig
from noisesim.noise.sampler import GaussianSampler
from noisesim.ops import along_dim, round_ste, ste


class Operands:
    """The quantities of one layer forward a noise model may use, each computed on first request.

    ``fan_in``: D, the number of products summed into one output. ``ranges()``: (R_x, R_w), the
    full ranges of the input and weight quantizers (R_w one value or one per output channel; for
    a product of two activations, R_a and R_b). ``norms()``: (||x_patch||, ||w_row||), the norms
    of the input receptive field and of the weight row of every output, each broadcastable to
    the output. ``key``: a value that changes whenever ``ranges()`` may change, or None when the
    ranges follow the data (dynamic quantizers) or carry gradients (nothing is then reused).
    For the partial sums of a tiled layer (tile dimension first) ``fan_in`` is a tensor of each tile's
    fan-in D_t, shaped to broadcast along that dimension, and ``fan_in_key`` a value naming it.
    """

    def __init__(self, fan_in: int | torch.Tensor, ranges: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                 norms: Callable[[], tuple[torch.Tensor, torch.Tensor]], key: Optional[tuple] = None,
                 fan_in_key: Optional[tuple] = None):
        self.fan_in, self.key = fan_in, key
        self.fan_in_key = fan_in if fan_in_key is None else fan_in_key
        self._ranges, self._norms = ranges, norms
        self.read_norms = False

    def for_tiles(self, fan_in: torch.Tensor, norms: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                  fan_in_key: tuple) -> "Operands":
        """These operands for the partial sums of a tiled layer: the same ranges (and key), each tile's fan-in and
        norms."""
        return Operands(fan_in, self._ranges, norms, key=self.key, fan_in_key=fan_in_key)

    def ranges(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._ranges()

    def norms(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.read_norms = True
        return self._norms()


class NoiseModel(nn.Module, abc.ABC):
    acts_on = "output"  # the tensor the noise is added to: "output" or "weight" (a NoiseSum of both: "both")
    default_sigma: Optional[float] = None  # the model's noise constant (None: it has none)
    needs_quantizers = False  # its scale is set by the quantizer ranges (weights and inputs must be quantized)
    tile_additive = False  # its output variance is proportional to the fan-in alone: over tiles it adds up to the
    # untiled one, so tiles without ADCs need no partial sums (noisesim.nn.base.SimLayer.finish_tiles)

    def __init__(self, cfg: NoiseConfig, fan_in: int, channels: int, channel_dim: int):
        super().__init__()
        self.cfg, self.fan_in, self.channels, self.channel_dim = cfg, fan_in, channels, channel_dim
        n = channels if cfg.per_channel else 1
        self.log_energy = nn.Parameter(torch.full((n,), math.log(cfg.e_mac)), requires_grad=cfg.learnable)
        self.enabled = True
        self.calibrating = False
        self.as_quantizer = cfg.as_quantizer
        self.register_buffer("out_lo", torch.tensor(float("inf")))
        self.register_buffer("out_hi", torch.tensor(float("-inf")))
        # per output channel, summed over recorded forwards
        self.register_buffer("signal_power", torch.zeros(channels, dtype=torch.float64))
        self.register_buffer("noise_power", torch.zeros(channels, dtype=torch.float64))
        self.register_buffer("last_std", torch.full((channels,), float("nan")))  # RMS sigma per channel
        self.sampler = GaussianSampler(cfg.seed, cfg.key)
        self._std_key: Optional[tuple] = None  # what the reused std was computed from (see _cached_std)
        self._std: Optional[torch.Tensor] = None
        self._data_dependent = False  # its std read the norms once: it is computed at every forward
        self.probe: Optional[Callable[["NoiseModel", torch.Tensor, torch.Tensor], torch.Tensor]] = None

    @property
    def kind(self) -> str:
        return self.cfg.kind

    @property
    def sigma(self) -> Optional[float]:
        return self.cfg.sigma if self.cfg.sigma is not None else self.default_sigma

    # -- switches -------------------------------------------------------------
    def enable(self, on: bool = True) -> None:
        self.enabled = on

    def disable(self) -> None:
        self.enabled = False

    def set_as_quantizer(self, on: bool = True) -> None:
        """Replace the noise by its equivalent uniform quantizer (the noise bits) while ``on``."""
        self.as_quantizer = on

    def start_calibration(self) -> None:
        """Forget the recorded output range and record it from now on (no noise is added)."""
        self.out_lo.fill_(float("inf"))
        self.out_hi.fill_(float("-inf"))
        self.calibrating = True

    def stop_calibration(self) -> None:
        self.calibrating = False

    def set_probe(self, probe: Optional[Callable[["NoiseModel", torch.Tensor, torch.Tensor], torch.Tensor]]) -> None:
        """While set, no noise is drawn: the forward returns ``probe(self, t, unit_variance)``, where
        ``unit_variance`` is the variance the noise would have per element of ``t`` at E = 1
        (broadcastable to ``t``). Sensitivity estimators use it (``noisesim.allocate.sensitivity``)."""
        self.probe = probe

    # -- energy ---------------------------------------------------------------
    def energy(self) -> torch.Tensor:
        """E in photons per MAC, one value or one per output channel (a source of a ``NoiseSum`` reads the sum's)."""
        owner = self.__dict__.get("_energy_owner")
        if owner is not None:
            return owner.energy()
        e = torch.exp(self.log_energy)
        if self.cfg.quantize_energy:
            e = ste(e, torch.round(e).clamp_min(1.0))
        return e

    @torch.no_grad()
    def set_energy(self, e_mac: float | torch.Tensor) -> None:
        e = torch.as_tensor(e_mac, dtype=self.log_energy.dtype, device=self.log_energy.device)
        if not bool((e > 0).all()):
            raise ValueError(f"energy must be > 0, got {e_mac}")
        self.log_energy.copy_(torch.log(e).expand_as(self.log_energy))

    def along_channels(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        """A per-channel vector (or one value) shaped along the channels of the perturbed tensor."""
        return along_dim(t, ndim, self.channel_dim)

    # -- noise ----------------------------------------------------------------
    @abc.abstractmethod
    def std(self, ops: Operands, ndim: int) -> torch.Tensor:
        """Standard deviation of the noise, broadcastable to the perturbed ``ndim``-dimensional tensor."""

    def forward(self, t: torch.Tensor, ops: Optional[Operands] = None, inplace: bool = False) -> torch.Tensor:
        """``t`` plus noise of the subclass's std.

        ``inplace``: the caller owns ``t`` (a fresh layer output) and, when no gradient is
        needed, the noise is added to it in place."""
        if self.calibrating:
            with torch.no_grad():
                self.out_lo = torch.minimum(self.out_lo, t.min().float())
                self.out_hi = torch.maximum(self.out_hi, t.max().float())
            return t
        if not self.enabled:
            return t
        if self.probe is not None:
            return self.probe(self, t, self.unit_variance(ops, t.dim()))
        std, fresh = self._cached_std(ops, t.dim())
        if fresh or self.cfg.record_snr:
            self._record(t, std)
        if self.as_quantizer:
            return self.equivalent_quantizer(t)
        noise = self.sampler.sample(t.shape, t.device, t.dtype)
        if not inplace or (torch.is_grad_enabled() and (t.requires_grad or std.requires_grad)):
            return torch.addcmul(t, noise, std)
        return t.addcmul_(noise, std)  # one pass, no new tensor

    def _cached_std(self, ops: Operands, ndim: int) -> tuple[torch.Tensor, bool]:
        """(std, whether it was computed now). It is reused while the operands' range key, the fan-in, the
        dimensions, E (the log-energy's version and storage) and the config stay the same; never under
        autograd, for data-dependent ranges (``ops.key`` None) or for a std that reads the norms."""
        if ops.key is None or self._data_dependent:
            return self.std(ops, ndim), True
        e = self.log_energy
        key = (ops.key, ops.fan_in_key, ndim, e._version, e.data_ptr(), self.cfg)
        if key == self._std_key:
            return self._std, False
        std = self.std(ops, ndim)
        if ops.read_norms:
            self._data_dependent = True
            return std, True
        self._std_key, self._std = key, std
        return std, True

    def unit_variance(self, ops: Operands, ndim: int) -> torch.Tensor:
        """The noise variance per element at E = 1 photon/MAC: std(E)^2 * E (every model's variance is
        proportional to 1/E), broadcastable to the perturbed tensor."""
        with torch.no_grad():
            return self.std(ops, ndim).pow(2) * self.along_channels(self.energy(), ndim)

    def per_channel_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum of ``t`` (shaped like the perturbed tensor) over everything but the channels: one value per channel."""
        if self.channels == 1:
            return t.reshape(1, -1).sum(1)
        return t.movedim(self.channel_dim, 0).reshape(self.channels, -1).sum(1)

    def _channel_rms(self, t: torch.Tensor) -> torch.Tensor:
        """The root mean square of ``t`` per output channel (one value when the layer has one channel): the norms
        along the contiguous dimensions after the channel's, then their squares summed over those before it."""
        if self.channels == 1:
            return torch.linalg.vector_norm(t).reshape(1) / t.numel() ** 0.5
        d = self.channel_dim % t.dim()
        norms = torch.linalg.vector_norm(t.reshape(-1, self.channels, t[(0,) * (d + 1)].numel()), dim=2)
        return norms.square().sum(0).sqrt() / (t.numel() // self.channels) ** 0.5

    @torch.no_grad()
    def _record(self, t: torch.Tensor, std: torch.Tensor) -> None:
        """Keep the RMS sigma per channel (``last_std``, for the noise bits) and, with ``record_snr``, add up the
        signal and noise powers. A data-dependent sigma (shot noise) is reduced in one pass, without a copy."""
        std = std.detach().float()
        rms = self._channel_rms(std.expand(t.shape)) if std.numel() > self.channels else std.reshape(-1)
        self.last_std.copy_(rms.expand(self.channels))
        if self.cfg.record_snr:
            signal = self._channel_rms(t.detach().float()).double().pow(2)
            self.signal_power += signal.expand(self.channels)
            self.noise_power += rms.double().pow(2).expand(self.channels)

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
    def _bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """[lo, hi] of the noise bits: the calibrated span of the perturbed tensor, or its positive part
        (``bits_range`` relu: what a post-ReLU output quantizer holds)."""
        if self.cfg.bits_range == "relu":
            return self.out_lo.clamp_min(0), self.out_hi.clamp_min(0)
        return self.out_lo, self.out_hi

    def output_range(self) -> float:
        """R_out: the calibrated span of the perturbed tensor (or of its positive part, see ``_bounds``)."""
        lo, hi = self._bounds()
        return float(hi - lo)

    def _steps(self) -> torch.Tensor:
        """Quantization steps over R_out whose uniform error step/sqrt(12) is at most sigma."""
        return torch.ceil(self.output_range() / (math.sqrt(12) * self.last_std)).clamp_min(1)

    def noise_bits(self) -> torch.Tensor:
        """ENOB equivalent: bits = log2(ceil(R_out / (sqrt(12) sigma)) + 1), per layer or channel."""
        return torch.log2(self._steps() + 1)

    def equivalent_quantizer(self, t: torch.Tensor) -> torch.Tensor:
        """Uniform quantization over [lo, hi] (``_bounds``) whose step/sqrt(12) equals sigma (the noise bits); with
        ``bits_range`` relu, values below 0 become 0, as the ReLU after the layer would make them."""
        if not math.isfinite(self.output_range()):
            raise RuntimeError("noise bits need the calibrated output range: run noisesim.calibrate first")
        lo, hi = (b.to(t.dtype) for b in self._bounds())
        step = self.along_channels(self.output_range() / self._steps(), t.dim()).to(t.dtype)
        return lo + round_ste((t.clamp(lo, hi) - lo) / step) * step

    def extra_repr(self) -> str:
        e = self.energy().detach()
        energy = f"E={e.item():.4g}" if e.numel() == 1 else f"E=per-channel({e.numel()}) mean {e.mean().item():.4g}"
        sigma = f" sigma={self.sigma:g}" if self.sigma is not None else ""
        flags = "".join([" learnable" if self.log_energy.requires_grad else "",
                         " integer-E" if self.cfg.quantize_energy else "",
                         " as-quantizer" if self.as_quantizer else "",
                         "" if self.enabled else " disabled"])
        return f"{self.kind}{sigma} {energy} D={self.fan_in}{flags}"
