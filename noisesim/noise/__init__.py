"""Analog noise models, one per file; ``make_noise`` builds one from a NoiseConfig."""
from __future__ import annotations

from typing import Optional

from noisesim.config import NoiseConfig
from noisesim.noise.base import NoiseModel
from noisesim.noise.shot import ShotNoise
from noisesim.noise.thermal import ThermalNoise
from noisesim.noise.weight import WeightNoise

NOISE_MODELS = {"thermal": ThermalNoise, "shot": ShotNoise, "weight": WeightNoise}


def make_noise(cfg: NoiseConfig, fan_in: int, channels: int, channel_dim: int) -> Optional[NoiseModel]:
    """The noise model of ``cfg.kind`` (None for ``none``). Weight noise acts on weights (channel dim 0)."""
    if cfg.kind == "none":
        return None
    if cfg.kind == "weight":
        channel_dim = 0
    return NOISE_MODELS[cfg.kind](cfg, fan_in, channels, channel_dim)


__all__ = ["NoiseModel", "ThermalNoise", "ShotNoise", "WeightNoise", "make_noise", "NOISE_MODELS"]
