"""Shot (photon-counting) noise, proportional to the signal magnitudes.

Added to each output y with input receptive field x_patch and weight row w_row of its
output channel (quantized, BN-folded), fan-in D and energy E per MAC:

    sigma = ||x_patch|| * ||w_row|| / sqrt(D * E)

The layer passes ``scale = ||x_patch|| * ||w_row||``, one value per output element. No
quantization is needed.
"""
from __future__ import annotations

import torch

from noisesim.noise.base import NoiseModel


class ShotNoise(NoiseModel):
    kind = "shot"

    def std(self, scale: torch.Tensor, ndim: int, fan_in: int) -> torch.Tensor:
        e = self._along_channels(self.energy(), ndim)
        return scale / torch.sqrt(fan_in * e)
