"""How much of a prepared model's compute the simulation covers.

``noisesim.measure_coverage(model, example_input)`` runs one noise-free forward under PyTorch's
``torch.utils.flop_counter.FlopCounterMode``, which counts the multiply-accumulates of every
matrix product the model runs (convolutions, ``mm`` / ``addmm`` / ``bmm``, attention kernels) and
attributes them to the module that ran them. The MACs counted inside instrumented layers are the
covered ones; the rest belong to modules the simulation left in float, which the report names
with their operators::

    coverage = MACs inside instrumented layers / all MACs counted   (1 MAC = 2 FLOPs)

``calibrate`` measures it on its first batch and keeps it on the model (``model.noisesim_coverage``);
``energy_report`` and the quantization card show it, and a warning names what is left out when
coverage is below 100%.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Optional

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from noisesim.nn.base import SimLayer

ATTRIBUTE = "noisesim_coverage"


def _cpu_attention(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of PyTorch's CPU attention kernel, which FlopCounterMode does not count: those of the others."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_EXTRA = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention}


class CoverageError(ValueError):
    """Coverage below a required minimum."""


@dataclasses.dataclass(frozen=True)
class Uncovered:
    """Matrix products a module computes itself (not inside an instrumented layer)."""

    module: str
    operators: tuple[str, ...]
    macs: int


@dataclasses.dataclass(frozen=True)
class Coverage:
    """Instrumented against all MACs of one forward (the batch it ran on)."""

    instrumented_macs: int
    total_macs: int
    uncovered: tuple[Uncovered, ...] = ()

    @property
    def fraction(self) -> float:
        return 1.0 if self.total_macs == 0 else self.instrumented_macs / self.total_macs

    def summary(self) -> str:
        text = f"{self.fraction:.2%} of {self.total_macs:,} MACs instrumented"
        if self.uncovered:
            text += "; not instrumented: " + ", ".join(
                f"{u.module or '(root)'} ({'/'.join(u.operators)}, {u.macs:,} MACs)" for u in self.uncovered[:8])
            if len(self.uncovered) > 8:
                text += f", and {len(self.uncovered) - 8} more"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "instrumented_macs": self.instrumented_macs,
                "total_macs": self.total_macs, "uncovered": [dataclasses.asdict(u) for u in self.uncovered]}


def _self_counts(counts: dict[str, dict[Any, int]], root: str) -> dict[str, dict[str, int]]:
    """FLOPs each module ran itself (its total minus that of the modules nested in it), keyed by module path.

    Only modules whose forward ran appear (a ModuleList does not): a module's nested counts are
    those of the paths whose nearest listed ancestor it is."""
    paths = {("" if k == root else k[len(root) + 1:]): v for k, v in counts.items()
             if k == root or k.startswith(f"{root}.")}
    own = {p: {str(op).removeprefix("aten."): n for op, n in v.items()} for p, v in paths.items()}
    for path, ops in paths.items():
        if not path:
            continue
        parts = path.split(".")
        parent = next((".".join(parts[:i]) for i in range(len(parts) - 1, -1, -1) if ".".join(parts[:i]) in paths),
                      None)
        if parent is None:
            continue
        for op, n in ops.items():
            name = str(op).removeprefix("aten.")
            own[parent][name] = own[parent].get(name, 0) - n
    return {p: {op: n for op, n in v.items() if n > 0} for p, v in own.items()}


def counting_macs() -> FlopCounterMode:
    """A ``FlopCounterMode`` (silent) that also counts PyTorch's CPU attention kernel; run a forward inside."""
    return FlopCounterMode(display=False, custom_mapping=_EXTRA)


def coverage_from(model: nn.Module, counter: FlopCounterMode) -> Coverage:
    """The coverage of the forward ``counter`` watched: MACs inside ``model``'s instrumented layers against all."""
    own = _self_counts(counter.get_flop_counts(), type(model).__name__)
    sim_paths = [name for name, m in model.named_modules() if isinstance(m, SimLayer)]

    def inside_sim(path: str) -> bool:
        return any(s == "" or path == s or path.startswith(f"{s}.") for s in sim_paths)

    uncovered = sorted((Uncovered(path, tuple(sorted(ops)), sum(ops.values()) // 2)
                        for path, ops in own.items() if ops and not inside_sim(path)), key=lambda u: -u.macs)
    total = counter.get_total_flops() // 2
    return Coverage(total - sum(u.macs for u in uncovered), total, tuple(uncovered))


def record_coverage(model: nn.Module, cov: Coverage, min_coverage: Optional[float] = None) -> Coverage:
    """Keep ``cov`` on the model; warn (or, below ``min_coverage``, raise CoverageError) when something is
    left out."""
    setattr(model, ATTRIBUTE, cov)
    if min_coverage is not None and cov.fraction < min_coverage:
        raise CoverageError(f"coverage {cov.summary()} is below the required {min_coverage:.0%}")
    if cov.uncovered:
        warnings.warn(f"noisesim coverage: {cov.summary()}", stacklevel=3)
    return cov


def coverage_of(model: nn.Module) -> Optional[Coverage]:
    """The coverage measured when ``model`` was calibrated (None before)."""
    return getattr(model, ATTRIBUTE, None)
