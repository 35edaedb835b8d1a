"""Shot (photon-counting) noise, proportional to the signal magnitudes.

Added to each output y with input receptive field x_patch and weight row w_row of its
output channel (quantized, BN-folded), fan-in D and energy E per MAC:

    sigma = ||x_patch|| * ||w_row|| / sqrt(D * E)

(Garg et al. 2021, arXiv 2102.06365: photon counting over the D products of one output, E
photons per product, gives a relative error 1/sqrt(D E) of the norm product.) The layer hands the
two norms, each broadcastable to the output, so the full-size product is formed once. No
quantization is needed.
"""
from __future__ import annotations

import torch

from noisesim.noise.base import NoiseModel, Operands
from noisesim.registry import NOISE_MODELS


@NOISE_MODELS.register("shot")
class ShotNoise(NoiseModel):
    def std(self, ops: Operands, ndim: int) -> torch.Tensor:
        x_norm, w_norm = ops.norms()
        e = self.along_channels(self.energy(), ndim)
        return x_norm * (w_norm / torch.sqrt(ops.fan_in * e))
