"""Shot (photon-counting) noise, proportional to the signal magnitudes.

Added to each output y with input receptive field x_patch and weight row w_row of its
output channel (quantized, BN-folded), fan-in D and energy E per MAC:

    sigma = ||x_patch|| * ||w_row|| / sqrt(D * E)

The layer passes the two factors ``scale = (||x_patch||, ||w_row||)``, each broadcastable to
the output (so the full-size product is formed once, already divided by sqrt(D * E)). No
quantization is needed.
"""
from __future__ import annotations

import torch

from noisesim.noise.base import NoiseModel


class ShotNoise(NoiseModel):
    kind = "shot"

    def std(self, scale: tuple[torch.Tensor, torch.Tensor], ndim: int, fan_in: int) -> torch.Tensor:
        x_norm, w_norm = scale
        e = self._along_channels(self.energy(), ndim)
        return x_norm * (w_norm / torch.sqrt(fan_in * e))
