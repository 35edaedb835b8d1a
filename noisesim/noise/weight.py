"""Weight (programming) noise on every weight, redrawn every forward and shared by the batch.

    w_noisy = w + N(0, sigma^2),   sigma = sigma_w * R_w / sqrt(E),   sigma_w = 0.1

R_w is the full range of the weight quantizer of the weight's output channel (Garg et al. 2021,
arXiv 2102.06365): at E = 1 a programming error of 10% of the weight range, whose variance E
repeats divide by E.
"""
from __future__ import annotations

import torch

from noisesim.noise.base import NoiseModel, Operands
from noisesim.registry import NOISE_MODELS

WEIGHT_SIGMA = 0.1


@NOISE_MODELS.register("weight")
class WeightNoise(NoiseModel):
    acts_on = "weight"
    default_sigma = WEIGHT_SIGMA

    def std(self, ops: Operands, ndim: int) -> torch.Tensor:
        _, r_w = ops.ranges()
        return self.sigma * self.along_channels(r_w, ndim) / torch.sqrt(self.along_channels(self.energy(), ndim))
