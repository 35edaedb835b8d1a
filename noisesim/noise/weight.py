"""Weight (programming) noise on every weight, redrawn every forward and shared by the batch.

    w_noisy = w + N(0, sigma^2),   sigma = sigma_w * R_w / sqrt(E),   sigma_w = 0.1

R_w is the full range of the weight quantizer of the weight's output channel; the layer
passes ``scale = R_w`` shaped along the output-channel axis (dim 0 of the weight).
"""
from __future__ import annotations

import torch

from noisesim.noise.base import NoiseModel


class WeightNoise(NoiseModel):
    kind = "weight"

    def std(self, scale: torch.Tensor, ndim: int, fan_in: int) -> torch.Tensor:
        e = self._along_channels(self.energy(), ndim)
        return self.cfg.sigma * scale / torch.sqrt(e)
