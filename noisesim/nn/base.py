"""Machinery shared by every instrumented matmul layer.

Forward of a layer with weights:  x -> act_quant -> matmul with the quantized (and, with
weight noise, perturbed) weights -> + bias -> + output noise (thermal / shot). Noise is
added to the pre-activation output, after BN folding and before the next layer's input
quantizer. While weights and the weight quantizer are frozen, the quantized weights, their
per-channel ranges R_w and row norms ||w_row|| are cached.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from noisesim.config import SimConfig
from noisesim.noise import NoiseModel, make_noise
from noisesim.quant.fake_quant import FakeQuantize


class SimLayer(nn.Module):
    """Base of SimConv, SimLinear, SimMatmul. Subclasses set ``kind`` and implement forward."""

    kind = "layer"

    def _init_sim(self, cfg: SimConfig, name: str, fan_in: int, out_channels: int, out_channel_dim: int,
                  layer_index: int, weight: Optional[torch.Tensor] = None) -> None:
        self.name, self.fan_in, self.out_channels = name, fan_in, out_channels
        self.sim_config = cfg
        self.macs = 0  # per sample, counted at the last forward
        self.out_elems = 0
        self.in_elems = 0  # input elements per sample, at the last forward
        self.act_quant = FakeQuantize(cfg.act_quant())
        self.weight_quant = None
        if weight is not None:
            self.weight_quant = FakeQuantize(cfg.weight_quant(), channels=out_channels, ch_axis=0)
            self.calibrate_weight_quant(weight)
        self.noise: Optional[NoiseModel] = make_noise(cfg.noise(layer_index), fan_in, out_channels,
                                                      out_channel_dim)
        self._cache_key: Optional[tuple] = None
        self._cache: Optional[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None

    @torch.no_grad()
    def calibrate_weight_quant(self, weight: torch.Tensor) -> None:
        """Weights are known up front: their quantizer is calibrated on them directly."""
        q = self.weight_quant
        if q.enabled:
            q.observer.reset()
            q.observer.update(weight)
            q.freeze()

    def quantize_input(self, x: torch.Tensor, quantizer: Optional[FakeQuantize] = None) -> torch.Tensor:
        """Fake-quantize an input (default: ``act_quant``), counting its elements per sample."""
        self.in_elems = x[0].numel() if x.dim() > 1 else x.numel()
        return (quantizer or self.act_quant)(x)

    # -- weights --------------------------------------------------------------
    def _weight_stats(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(quantized weight, R_w per output channel, ||w_row|| per output channel)."""
        q = self.weight_quant
        wq = q(w)
        r_w = q.full_range().expand(self.out_channels) if q.enabled else \
            (w.flatten(1).amax(1) - w.flatten(1).amin(1))
        return wq, r_w, wq.flatten(1).norm(dim=1)

    def weight_stats(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w = self.weight
        trainable = torch.is_grad_enabled() and (w.requires_grad or self.weight_quant.learnable)
        if trainable:
            return self._weight_stats(w)
        q = self.weight_quant
        key = (w._version, w.data_ptr(), q.version, w.dtype, w.device)
        if q.learnable:  # trained bits or ranges change in place: key on their current values
            key += (q.lo._version, q.hi._version) + tuple(
                p._version for p in (q.bitwidth.parameters() if q.bitwidth is not None else ()))
        if key != self._cache_key:
            with torch.no_grad():
                self._cache = self._weight_stats(w)
            self._cache_key = key
        return self._cache

    def perturbed_weight(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantized weight with weight noise (if any) plus R_w and ||w_row||."""
        wq, r_w, w_norm = self.weight_stats()
        n = self.noise
        if n is not None and n.kind == "weight":
            shape = (-1,) + (1,) * (wq.dim() - 1)
            wq = n(wq, None if n.calibrating else r_w.reshape(shape))
        return wq, r_w, w_norm

    # -- output noise ---------------------------------------------------------
    def add_output_noise(self, y: torch.Tensor, scale_fn) -> torch.Tensor:
        """Count MACs and add thermal / shot noise to ``y``; ``scale_fn()`` gives the noise scale lazily."""
        n = self.noise
        self.out_elems = y[0].numel() if y.dim() > 1 else y.numel()
        self.macs = self.fan_in * self.out_elems
        if n is None or n.kind == "weight":
            return y
        if n.calibrating or not n.enabled:
            return n(y, None)
        return n(y, scale_fn(), fan_in=self.fan_in, inplace=True)

    def thermal_scale(self, r_w: torch.Tensor, ndim: int, channel_dim: int) -> torch.Tensor:
        """R_w * R_x shaped along the output channels of an ``ndim`` output."""
        shape = [1] * ndim
        shape[channel_dim] = -1
        r_x = self.act_quant.full_range()
        return r_w.reshape(shape) * r_x.reshape(())

    # -- reporting ------------------------------------------------------------
    def energy(self) -> Optional[torch.Tensor]:
        return None if self.noise is None else self.noise.energy()

    @property
    def weight_count(self) -> int:
        w = getattr(self, "weight", None)
        return 0 if w is None else w.numel()
