"""Thermal (read-out) noise, set by the quantizer ranges.

Added to each pre-activation output y of a layer with fan-in D and energy E per MAC:

    sigma = sigma_t * R_w * R_x * sqrt(D / E),   sigma_t = 0.01

R_w is the full range of the output channel's weight quantizer and R_x that of the input
quantizer (Garg, Lou, Jain, Nahmias 2021, "Dynamic Precision Analog Computing for Neural
Networks", arXiv 2102.06365): a read-out noise whose scale follows the converters' full ranges;
with sigma_t = 0.01, one photon per MAC at D = 1 is a 1% full-scale error. It needs quantized
weights and inputs.
"""
from __future__ import annotations

import torch

from noisesim.noise.base import NoiseModel, Operands
from noisesim.registry import NOISE_MODELS

THERMAL_SIGMA = 0.01


@NOISE_MODELS.register("thermal")
class ThermalNoise(NoiseModel):
    default_sigma = THERMAL_SIGMA
    needs_quantizers = True
    tile_additive = True

    def std(self, ops: Operands, ndim: int) -> torch.Tensor:
        r_x, r_w = ops.ranges()
        e = self.along_channels(self.energy(), ndim)
        return self.sigma * (r_x * self.along_channels(r_w, ndim)) * torch.sqrt(ops.fan_in / e)
