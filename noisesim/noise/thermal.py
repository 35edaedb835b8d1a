"""Thermal (read-out) noise, set by the quantizer ranges.

Added to each pre-activation output y of a layer with fan-in D and energy E per MAC:

    sigma = sigma_t * R_w * R_x * sqrt(D / E),   sigma_t = 0.01

R_w is the full range of the output channel's weight quantizer and R_x that of the input
quantizer; the layer passes ``scale = R_w * R_x`` (per output channel or scalar). It needs
quantized weights and inputs.
"""
from __future__ import annotations

import math

import torch

from noisesim.noise.base import NoiseModel


class ThermalNoise(NoiseModel):
    kind = "thermal"

    def std(self, scale: torch.Tensor, ndim: int, fan_in: int) -> torch.Tensor:
        e = self._along_channels(self.energy(), ndim)
        return self.cfg.sigma * scale * torch.sqrt(fan_in / e)
