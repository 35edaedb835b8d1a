"""The allocation-method protocol: a problem in, an :class:`Allocation` out, with its compute cost.

Every method answers the same question — per-layer (or per-channel) energies or bit-widths
under an average budget — for a prepared, calibrated model, using training batches only
(never the evaluation data). Methods are registered by name in
``noisesim.registry.ALLOCATORS``; granularity (layer / channel) is a property of the prepared
model (one energy per layer or per output channel), separate from the method.
"""
from __future__ import annotations

import abc
import contextlib
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional

import torch
from torch import nn

from noisesim.allocate.allocation import Allocation


@dataclass
class AllocationProblem:
    """model: prepared and calibrated (its granularity fixed by ``noise_per_channel``);
    target_emac: the average energy budget in photons/MAC (None: no energy budget);
    batches / task: training data and its task; teacher: the float model (generated labels)."""

    model: nn.Module
    target_emac: Optional[float]
    granularity: str
    batches: Iterable
    task: Any
    teacher: Optional[nn.Module] = None


class Allocator(abc.ABC):
    """One allocation method."""

    name = "allocator"

    @abc.abstractmethod
    def allocate(self, problem: AllocationProblem) -> Allocation:
        """Find an allocation, leave it applied to ``problem.model`` and return it."""


@dataclass
class Cost:
    """Compute spent by a method: wall time (s) and model forward / backward passes (batches)."""

    seconds: float = 0.0
    forward: int = 0
    backward: int = 0

    def as_info(self) -> dict[str, float]:
        return {"alloc_seconds": round(self.seconds, 3), "alloc_forward": self.forward, "alloc_backward": self.backward}


@contextlib.contextmanager
def measure_cost(model: nn.Module, params: Iterable[torch.Tensor] = ()) -> Iterator[Cost]:
    """Count forward calls of ``model`` and backward passes reaching ``params`` (the first one watched)."""
    cost = Cost()
    start = time.perf_counter()

    def forward(*_):
        cost.forward += 1

    def backward(grad):
        cost.backward += 1
        return grad

    handles = [model.register_forward_hook(forward)]
    watched = next((p for p in params if p.requires_grad), None)
    if watched is not None:
        handles.append(watched.register_hook(backward))
    try:
        yield cost
    finally:
        cost.seconds = time.perf_counter() - start
        for h in handles:
            h.remove()
