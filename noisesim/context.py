"""Context managers and calibration.

``calibrating(model)``: every activation quantizer observes (values pass through in float),
every noise model is silent and records the range of the tensor it would perturb; on a normal
exit the quantizers freeze their observed ranges. ``calibrate(model, batches)`` runs it over
batches in eval mode without gradients, then, for ADCs whose range is observed, a second pass
in which only the ADCs observe the partial sums of the now quantized inputs (noise off).
``noise_disabled(model)``: no noise inside.
``noise_as_quantizer(model)``: every noise model is replaced by its equivalent uniform
quantizer (the noise bits) inside. Each restores every module's previous state on exit.
"""
from __future__ import annotations

import contextlib
import itertools
from typing import Any, Callable, Iterable, Iterator, Optional

import torch
from torch import nn

from noisesim.batches import call_model, split_batch
from noisesim.coverage import counting_macs, coverage_from, record_coverage
from noisesim.nn.adc import ADC
from noisesim.nn.base import SimLayer
from noisesim.noise.base import NoiseModel
from noisesim.quant.fake_quant import FakeQuantize


def _noise_models(model: nn.Module) -> list[NoiseModel]:
    return [m for m in model.modules() if isinstance(m, NoiseModel)]


@contextlib.contextmanager
def _switched(items: list, state: Callable[[Any], bool], switch: Callable[[Any, bool], None],
              value: bool) -> Iterator[None]:
    """Call ``switch(item, value)`` on every item inside the block, then ``switch(item, previous state)``."""
    saved = [state(i) for i in items]
    for i in items:
        switch(i, value)
    try:
        yield
    finally:
        for i, s in zip(items, saved):
            switch(i, s)


@contextlib.contextmanager
def noise_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Turn every noise model off inside the block, restoring each one's state after."""
    with _switched(_noise_models(model), lambda n: n.enabled, NoiseModel.enable, False):
        yield model


@contextlib.contextmanager
def noise_as_quantizer(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block each noise model quantizes its output with step sqrt(12) * sigma over the
    calibrated output range instead of adding noise (same error variance, deterministic)."""
    with _switched(_noise_models(model), lambda n: n.as_quantizer, NoiseModel.set_as_quantizer, True):
        yield model


def activation_quantizers(model: nn.Module) -> list[FakeQuantize]:
    """Every enabled quantizer of ``model`` that sees activations (not a layer's weight quantizer, not an ADC)."""
    others = {id(m.weight_quant) for m in model.modules() if isinstance(m, SimLayer)}
    others |= {id(m.quant) for m in model.modules() if isinstance(m, ADC)}
    return [m for m in model.modules() if isinstance(m, FakeQuantize) and m.enabled and id(m) not in others]


def _adcs(model: nn.Module, observed: bool = False) -> list[FakeQuantize]:
    """The quantizers of the ADCs (``observed``: only those whose range is observed on data, not set from the
    full-scale bound)."""
    return [m.quant for m in model.modules() if isinstance(m, ADC) and not (observed and m.rule == "full_scale")]


@contextlib.contextmanager
def calibrating(model: nn.Module, adcs: bool = False) -> Iterator[nn.Module]:
    """Observe activation ranges (noise off, ADCs passing partial sums through); freeze the observers on a
    normal exit. ``adcs``: observe the ranges of the ADCs alone (the inputs are then quantized with their frozen
    ranges).

    Weight quantizers were calibrated on the weights at ``prepare`` time and are left alone."""
    acts = _adcs(model, observed=True) if adcs else activation_quantizers(model) + _adcs(model)
    noises = _noise_models(model)
    for q in acts:
        q.start_calibration()
    for n in noises:
        n.start_calibration()
    ok = False
    try:
        yield model
        ok = True
    finally:
        for n in noises:
            n.stop_calibration()
        for q in acts:
            q.stop_calibration(freeze=ok)


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[Any], max_batches: Optional[int] = None,
              min_coverage: Optional[float] = None) -> nn.Module:
    """Calibrate activation quantizers on ``batches`` (tensors, dicts, or (inputs, targets) pairs).

    The first batch also measures the coverage (``noisesim.coverage``): kept as
    ``model.noisesim_coverage``, a warning names what runs uninstrumented, and ``min_coverage``
    (a fraction) turns it into a ``CoverageError``."""
    was_training = model.training
    model.eval()
    seen = 0
    cov = None
    kept: list = []  # the inputs again for the ADCs' pass, if there are ADCs to calibrate
    adcs = bool(_adcs(model, observed=True))
    try:
        with calibrating(model):
            for batch in itertools.islice(batches, max_batches):
                inputs, _ = split_batch(batch)
                if adcs:
                    kept.append(inputs)
                if seen == 0:
                    with counting_macs() as counter:
                        call_model(model, inputs)
                    cov = coverage_from(model, counter)
                else:
                    call_model(model, inputs)
                seen += 1
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("calibrate() got no batches")
    if kept:
        model.eval()
        try:
            with calibrating(model, adcs=True):
                for inputs in kept:
                    call_model(model, inputs)
        finally:
            model.train(was_training)
    for m in model.modules():  # a full-scale ADC range follows the frozen input ranges at once
        if isinstance(m, SimLayer) and m.adc is not None and m.adc.rule == "full_scale":
            m.set_full_scale_bound()
    record_coverage(model, cov, min_coverage)
    return model
