"""Read-out noise of one detector per output: what a noise model for ``--noise_type`` looks like.

Each output is read by its own detector whose noise, referred to the output, scales with the
converters' full ranges and averages down over E repeats, but does not grow with the fan-in D:

    sigma = sigma_r * R_w * R_x / sqrt(E),   sigma_r = 0.05
"""
import torch

from noisesim.noise.base import NoiseModel, Operands


class ReadoutNoise(NoiseModel):
    default_sigma = 0.05
    needs_quantizers = True  # R_x and R_w are the quantizers' ranges

    def std(self, ops: Operands, ndim: int) -> torch.Tensor:
        r_x, r_w = ops.ranges()
        e = self.along_channels(self.energy(), ndim)
        return self.sigma * r_x * self.along_channels(r_w, ndim) / torch.sqrt(e)
