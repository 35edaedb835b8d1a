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
from typing import Any, Callable, Iterable, Iterator, Optional

import torch
from torch import nn

from noisesim.allocate.activation_bits import act_sizes, set_act_bits
from noisesim.allocate.allocation import Allocation


QUANTITIES = ("energy", "weight_bits", "act_bits", "weights_and_act_bits")
BIT_KINDS = {"weight_bits": ("weight",), "act_bits": ("act",), "weights_and_act_bits": ("weight", "act")}


@dataclass
class AllocationProblem:
    """model: prepared and calibrated (its granularity fixed by ``noise_per_channel``);
    target_emac: the average energy budget in photons/MAC (None: no energy budget);
    batches / task: training data and its task; teacher: the float model (generated labels);
    quantity: what is allocated, ``energy``, ``weight_bits`` (per layer, under the weight-count weighted
    average ``target_weight_bits``), ``act_bits`` (input bits per layer, under the input-element weighted
    average ``target_act_bits``) or ``weights_and_act_bits`` (both, each under its own budget)."""

    model: nn.Module
    target_emac: Optional[float]
    granularity: str
    batches: Iterable
    task: Any
    teacher: Optional[nn.Module] = None
    quantity: str = "energy"
    target_weight_bits: Optional[float] = None
    target_act_bits: Optional[float] = None

    def __post_init__(self):
        if self.quantity not in QUANTITIES:
            raise ValueError(f"quantity must be one of {', '.join(QUANTITIES)}, got {self.quantity!r}")
        for kind in self.bit_kinds():
            if self.target_bits(kind) is None:
                raise ValueError(f"allocating {kind} bits needs target_{kind}_bits")

    def bit_kinds(self) -> tuple[str, ...]:
        """The bit-widths allocated: (), ("weight",), ("act",) or both."""
        return BIT_KINDS.get(self.quantity, ())

    def target_bits(self, kind: str) -> Optional[float]:
        return self.target_weight_bits if kind == "weight" else self.target_act_bits


@dataclass(frozen=True)
class NoSettings:
    """The settings of a method that has none."""


@dataclass(frozen=True)
class AllocationJob:
    """What a sweep tells a method about the point it allocates, besides the method's own settings.

    train_energy / train_bits / train_ranges: what a trained allocation may train (energies only where
    the point is noisy and energies are what is allocated; a uniform point never trains energies); target_weight_bits / target_act_bits: the bit budgets;
    generated_labels: train on the float model's predictions; progress, desc: its progress bar. memo: a dict that
    lives as long as the sweep, where a method may keep what does not depend on the target or the granularity
    (sensitivities), under ``memo_key``, which names the point's network apart from its energies (None: keep
    nothing)."""

    train_energy: bool = True
    train_bits: bool = False
    train_ranges: bool = False
    target_weight_bits: Optional[float] = None
    target_act_bits: Optional[float] = None
    generated_labels: bool = False
    progress: bool = True
    desc: str = "allocate"
    memo: Optional[dict] = None
    memo_key: Optional[str] = None


class Allocator(abc.ABC):
    """One allocation method; ``granularities``: the energy granularities it can allocate;
    ``quantities``: what it can allocate (energy, weight_bits). ``Settings``: the dataclass of its
    command-line settings (declared with :func:`noisesim.settings.setting`), from which
    :meth:`from_settings` builds it."""

    name = "allocator"
    granularities: tuple[str, ...] = ("layer", "channel")
    quantities: tuple[str, ...] = ("energy", "weight_bits")
    Settings: type = NoSettings

    @classmethod
    def from_settings(cls, settings: Any, job: AllocationJob) -> "Allocator":
        """The method with ``settings`` (an instance of ``cls.Settings``) for the point ``job`` describes."""
        return cls()

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


def weight_layers(model: nn.Module) -> dict[str, Any]:
    """The instrumented layers with quantized weights, by name."""
    from noisesim.nn.prepare import sim_layers

    return {m.name: m for m in sim_layers(model) if m.weight_quant is not None and m.weight_quant.cfg.bits is not None}


def set_weight_bits(model: nn.Module, bits: dict[str, float]) -> None:
    layers = weight_layers(model)
    for name, b in bits.items():
        layers[name].set_bits(weight=b)


def bit_sizes(model: nn.Module, kind: str) -> dict[str, int]:
    """What a layer's ``kind`` ("weight" or "act") bits weigh in their budget: its weights, or its input elements
    per sample."""
    return {n: m.weight.numel() for n, m in weight_layers(model).items()} if kind == "weight" else act_sizes(model)


def set_bits(model: nn.Module, kind: str, bits: dict[str, float]) -> None:
    """Set the ``kind`` ("weight" or "act") bits of the named layers."""
    (set_weight_bits if kind == "weight" else set_act_bits)(model, bits)


def bit_allocation(problem: AllocationProblem, method: str, solve: Callable[[str, float], tuple]) -> Allocation:
    """Each kind of bits the problem allocates in turn: ``solve(kind, target)`` returns (name -> bits, its
    ``Sensitivity``, the layers whose estimate was replaced); the bits are applied, and the allocation carries the
    cost (wall time, forward / backward passes summed over kinds), the estimators and the replaced count."""
    model, methods, forward, backward, replaced_total = problem.model, [], 0, 0, 0
    with measure_cost(model) as cost:
        for kind in problem.bit_kinds():
            bits, sens, replaced = solve(kind, problem.target_bits(kind))
            set_bits(model, kind, bits)
            forward, backward = forward + sens.forward, backward + sens.backward
            methods.append(sens.method)
            replaced_total += len(replaced)
    alloc = Allocation.from_model(model, method, problem.granularity)
    alloc.info.update(alloc_seconds=round(cost.seconds, 3), alloc_forward=forward, alloc_backward=backward,
                      sensitivity=" + ".join(methods), replaced_traces=replaced_total)
    return alloc
