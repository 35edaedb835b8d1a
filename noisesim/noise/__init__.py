"""Analog noise models, one per file, registered by name; ``make_noise`` builds one from a NoiseConfig."""
from __future__ import annotations

from typing import Optional

import dataclasses

from noisesim.config import NoiseConfig, noise_parts
from noisesim.noise.base import NoiseModel, Operands
from noisesim.noise.shot import ShotNoise
from noisesim.noise.sum import NoiseSum
from noisesim.noise.thermal import ThermalNoise
from noisesim.noise.weight import WeightNoise
from noisesim.registry import NOISE_MODELS, PluginError


def make_noise(cfg: NoiseConfig, fan_in: int, channels: int, channel_dim: int,
               has_weights: bool = True) -> Optional[NoiseModel]:
    """The noise model of ``cfg.kind`` for a layer whose output channels lie on ``channel_dim``.

    None for ``none``, and for a weight-acting model on a layer without weights (a product of
    two activations). A weight-acting model's channels lie on dim 0 of the weight. A sum
    (``thermal+shot``) is a :class:`NoiseSum` of its models (those that act on this layer)."""
    if cfg.kind == "none":
        return None
    parts = noise_parts(cfg.kind)
    if len(parts) > 1:
        classes = [NOISE_MODELS.get(p) for p in parts]
        kept = [(p, c) for p, c in zip(parts, classes) if has_weights or c.acts_on != "weight"]
        if len(kept) == 1:
            return make_noise(dataclasses.replace(cfg, kind=kept[0][0]), fan_in, channels, channel_dim, has_weights)
        return NoiseSum(cfg, fan_in, channels, channel_dim, kept) if kept else None
    cls = NOISE_MODELS.get(cfg.kind)
    if cls.acts_on == "weight":
        if not has_weights:
            return None
        channel_dim = 0
    return cls(cfg, fan_in, channels, channel_dim)


def _noise_model_class(obj, origin: str) -> type:
    """What a plugin registers as a noise model: a NoiseModel subclass."""
    if not (isinstance(obj, type) and issubclass(obj, NoiseModel)):
        raise PluginError(f"{obj!r} is not a subclass of noisesim.noise.NoiseModel")
    return obj


NOISE_MODELS.adapt = _noise_model_class

__all__ = ["NoiseModel", "Operands", "ThermalNoise", "ShotNoise", "WeightNoise", "NoiseSum", "make_noise"]
