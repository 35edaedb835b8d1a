"""The allocation object every method returns: energies per MAC and bit-widths, per layer or per channel.

An :class:`Allocation` maps each instrumented layer (by its module path) to its energy per MAC
in photons (one value, or one per output channel), its weight bit-width(s) and its input
bit-width, together with what the averages are weighted by (MACs, weight count, input
elements). It reads itself from a prepared model (``from_model``), applies itself to one
(``apply``), rescales to an average budget, and round-trips through JSON, so an allocation
found by one method on one machine can be evaluated anywhere. A layer that runs whole photons
(``quantize_energy``) gets its energies rounded within the allocation's budget
(:meth:`Allocation.in_whole_photons`), never each rounded on its own.

    average energy      E_avg = sum_l mean_c(E_l) MACs_l / sum_l MACs_l
    average weight bits       sum_l mean_c(b_l) weights_l / sum_l weights_l
    average input bits        sum_l a_l inputs_l / sum_l inputs_l
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from noisesim.allocate.rounding import round_to_budget
from noisesim.energy import weighted_mean
from noisesim.io import atomic_write
from noisesim.nn.prepare import sim_layers


@dataclass
class LayerAllocation:
    """One layer's share. ``energy``: photons/MAC (one value, or one per output channel; None: no noise).
    ``weight_bits``: one value or one per output channel (None: float weights). ``act_bits``: input bits.
    ``adc_bits``: the bits of the ADC that reads its partial sums (None: no ADC)."""

    macs: int
    energy: Optional[list[float]] = None
    weight_bits: Optional[list[float]] = None
    act_bits: Optional[float] = None
    adc_bits: Optional[float] = None
    weights: int = 0
    in_elems: int = 0


def _values(t: Optional[torch.Tensor | float]) -> Optional[list[float]]:
    if t is None:
        return None
    return [float(v) for v in torch.as_tensor(t).detach().float().reshape(-1)]


@dataclass
class Allocation:
    """Per-layer energies and bit-widths of one model, and how they were found (``method``,
    ``granularity``, ``info``: e.g. wall time and forward/backward passes)."""

    layers: dict[str, LayerAllocation]
    method: str = "uniform"
    granularity: str = "layer"
    info: dict[str, Any] = field(default_factory=dict)

    # -- from and to a model ----------------------------------------------------
    @classmethod
    def from_model(cls, model: nn.Module, method: str = "uniform", granularity: str = "layer") -> "Allocation":
        """The model's current energies and bits (MACs and input sizes from its last forward)."""
        layers = {}
        for m in sim_layers(model):
            wq = m.weight_quant
            layers[m.name] = LayerAllocation(
                macs=m.macs, energy=_values(m.energy()),
                weight_bits=_values(wq.bits()) if wq is not None and wq.enabled else None,
                act_bits=m.act_quant.mean_bits() if m.act_quant.enabled else None,
                adc_bits=None if m.adc is None else m.adc.bits, weights=m.weight_count, in_elems=m.in_elems)
        if not layers:
            raise ValueError("model has no instrumented layer: call noisesim.prepare first")
        return cls(layers, method, granularity)

    @torch.no_grad()
    def apply(self, model: nn.Module) -> nn.Module:
        """Set every layer's energy and bits to this allocation's (layers are matched by name). The layers whose
        noise runs whole photons (``quantize_energy``) get :meth:`in_whole_photons` energies."""
        layers = {m.name: m for m in sim_layers(model)}
        missing = sorted(set(self.layers) - set(layers))
        if missing:
            raise ValueError(f"allocation names layers the model does not have: {', '.join(missing[:5])}"
                             + (" ..." if len(missing) > 5 else ""))
        whole = [n for n in self.layers if layers[n].noise is not None and layers[n].noise.cfg.quantize_energy]
        source = self.in_whole_photons(whole) if whole else self
        for name, a in source.layers.items():
            m = layers[name]
            if a.energy is not None and m.noise is not None:
                m.set_energy(_fit(a.energy, m.noise.log_energy.numel(), name))
            weight_bits = None
            if a.weight_bits is not None and m.weight_quant is not None and m.weight_quant.bitwidth is not None:
                weight_bits = _fit(a.weight_bits, m.weight_quant.bitwidth.log2_bits.numel(), name)
            elif a.weight_bits is not None:
                weight_bits = sum(a.weight_bits) / len(a.weight_bits)
            m.set_bits(weight=weight_bits, act=a.act_bits)
            if a.adc_bits is not None and m.adc is not None:
                m.adc.quant.set_bits(a.adc_bits)
        return model

    # -- averages -----------------------------------------------------------------
    def _noisy(self) -> list[LayerAllocation]:
        return [a for a in self.layers.values() if a.energy is not None]

    def average_energy(self) -> float:
        """MAC-weighted average energy per MAC (photons); NaN without noisy layers."""
        noisy = self._noisy()
        if not noisy:
            return math.nan
        return float(weighted_mean([_float64(a.energy) for a in noisy], [a.macs for a in noisy]))

    def average_weight_bits(self) -> float:
        q = [a for a in self.layers.values() if a.weight_bits is not None]
        if not q:
            return math.nan
        return float(weighted_mean([_float64(a.weight_bits) for a in q], [a.weights for a in q]))

    def average_act_bits(self) -> float:
        q = [a for a in self.layers.values() if a.act_bits is not None]
        return float(weighted_mean([a.act_bits for a in q], [a.in_elems for a in q])) if q else math.nan

    # -- derived allocations ------------------------------------------------------
    def with_average_energy(self, target: float) -> "Allocation":
        """Every energy scaled by one factor so that the average is ``target``."""
        factor = target / self.average_energy()
        return self._with_energies(lambda n, a: [e * factor for e in a.energy])

    def in_whole_photons(self, names: Optional[list[str]] = None) -> "Allocation":
        """The energies of the layers ``names`` (default: all) as whole photons per MAC, at least 1, with their
        MAC-weighted total within the one they have: floored, then raised by largest remainder while the budget
        allows (``noisesim.allocate.rounding``). A channel weighs its layer's MACs / channels."""
        chosen = [n for n in (self.layers if names is None else names) if self.layers[n].energy is not None]
        values = [e for n in chosen for e in self.layers[n].energy]
        if not values:
            return self._with_energies(lambda n, a: list(a.energy))
        weights = [self.layers[n].macs / len(self.layers[n].energy) for n in chosen for _ in self.layers[n].energy]
        if not all(w > 0 for w in weights):
            raise ValueError("whole photons need every layer's MACs (run a forward pass first)")
        average = sum(v * w for v, w in zip(values, weights)) / sum(weights)
        whole = iter(round_to_budget(values, weights, average, low=1))
        rounded = {n: [float(next(whole)) for _ in self.layers[n].energy] for n in chosen}
        return self._with_energies(lambda n, a: rounded.get(n, list(a.energy)))

    def uniform(self, e_mac: float) -> "Allocation":
        """Every noisy layer (and channel) at ``e_mac``: the uniform allocation of the same layers."""
        out = self._with_energies(lambda n, a: [e_mac] * len(a.energy))
        out.method, out.info = "uniform", {}
        return out

    def _with_energies(self, fn) -> "Allocation":
        layers = {n: dataclasses.replace(a, energy=fn(n, a) if a.energy is not None else None)
                  for n, a in self.layers.items()}
        return Allocation(layers, self.method, self.granularity, dict(self.info))

    # -- JSON -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "granularity": self.granularity, "info": self.info,
                "average_energy": self.average_energy(), "average_weight_bits": self.average_weight_bits(),
                "average_act_bits": self.average_act_bits(),
                "layers": {n: dataclasses.asdict(a) for n, a in self.layers.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Allocation":
        try:
            layers = {n: LayerAllocation(**a) for n, a in d["layers"].items()}
            return cls(layers, d.get("method", "uniform"), d.get("granularity", "layer"), dict(d.get("info", {})))
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise ValueError(f"not an allocation ({type(e).__name__}: {e})") from None

    def save(self, path: str | os.PathLike) -> None:
        text = json.dumps(self.to_dict(), indent=1, default=str)
        atomic_write(path, lambda f: f.write(text))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Allocation":
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: cannot read an allocation ({type(e).__name__})") from None
        try:
            return cls.from_dict(d)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


def _float64(values: list[float]) -> torch.Tensor:
    """Values as float64: averages of float32 copies missed their budget by 1e-8 of its size."""
    return torch.tensor(values, dtype=torch.float64)


def _fit(values: list[float], n: int, name: str) -> torch.Tensor:
    """``values`` for a parameter of ``n`` entries: equal length, or one value spread, or a mean."""
    t = torch.tensor(values)
    if t.numel() == n:
        return t
    if t.numel() == 1 or n == 1:
        return t.mean().expand(n)
    raise ValueError(f"layer {name}: allocation has {t.numel()} values, the layer {n}")
