"""Context managers and calibration.

``calibrating(model)``: every quantizer observes (values pass through in float), every
noise model is silent and records the range of the tensor it would perturb; on exit the
quantizers freeze their observed ranges. ``calibrate(model, batches)`` runs it over
batches in eval mode without gradients. ``noise_disabled(model)``: no noise inside.
``noise_as_quantizer(model)``: every noise model is replaced by its equivalent uniform
quantizer (the noise bits) inside.
"""
from __future__ import annotations

import contextlib
import itertools
from typing import Any, Iterable, Iterator, Optional

import torch
from torch import nn

from noisesim.nn.base import SimLayer
from noisesim.noise.base import NoiseModel
from noisesim.quant.fake_quant import FakeQuantize
from noisesim.train.tasks import call_model, split_batch


@contextlib.contextmanager
def _noise_attribute(model: nn.Module, name: str, value: bool) -> Iterator[nn.Module]:
    """Set ``name`` on every noise model inside the block, restoring each one's value after."""
    noises = [m for m in model.modules() if isinstance(m, NoiseModel)]
    saved = [getattr(n, name) for n in noises]
    for n in noises:
        setattr(n, name, value)
    try:
        yield model
    finally:
        for n, s in zip(noises, saved):
            setattr(n, name, s)


def noise_disabled(model: nn.Module) -> contextlib.AbstractContextManager[nn.Module]:
    """Turn every noise model off inside the block, restoring each one's state after."""
    return _noise_attribute(model, "enabled", False)


def noise_as_quantizer(model: nn.Module) -> contextlib.AbstractContextManager[nn.Module]:
    """Inside the block each noise model quantizes its output with step sqrt(12) * sigma over the
    calibrated output range instead of adding noise (same error variance, deterministic)."""
    return _noise_attribute(model, "as_quantizer", True)


@contextlib.contextmanager
def calibrating(model: nn.Module) -> Iterator[nn.Module]:
    """Observe activation ranges (noise off); freeze the observers on a normal exit."""
    quants = [m for m in model.modules() if isinstance(m, FakeQuantize) and m.enabled]
    noises = [m for m in model.modules() if isinstance(m, NoiseModel)]
    # weight quantizers were calibrated on the weights at prepare time; re-observe only activations
    weight_quants = {id(m.weight_quant) for m in model.modules() if isinstance(m, SimLayer)}
    acts = [q for q in quants if id(q) not in weight_quants]
    for q in acts:
        q.observer.reset()
        q.calibrating = True
    for n in noises:
        n.out_lo.fill_(float("inf"))
        n.out_hi.fill_(float("-inf"))
        n.calibrating = True
    ok = False
    try:
        yield model
        ok = True
    finally:
        for n in noises:
            n.calibrating = False
        for q in acts:
            q.calibrating = False
            if ok and q.observer.batches:
                q.freeze()


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[Any], max_batches: Optional[int] = None) -> nn.Module:
    """Calibrate activation quantizers on ``batches`` (tensors, dicts, or (inputs, targets) pairs)."""
    was_training = model.training
    model.eval()
    seen = 0
    with calibrating(model):
        for batch in itertools.islice(batches, max_batches):
            inputs, _ = split_batch(batch)
            call_model(model, inputs)
            seen += 1
    model.train(was_training)
    if seen == 0:
        raise ValueError("calibrate() got no batches")
    return model
