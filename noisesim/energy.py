"""MAC counting, energy accounting and the constrained penalties (see docs/physics.md).

MACs per sample of a layer = fan-in D x output elements per sample (Conv: C_in/groups *
k_h * k_w * C_out * H_out * W_out; Linear: in_features x outputs; matmul: contracted size
x outputs), counted at the layer's last forward.

    average energy  E_avg = sum_l mean_c(E_l) * MACs_l / sum_l MACs_l      [photons/MAC]
    energy loss     task + lambda * max(0, log E_avg - log E_target)       (constrained)
                    task + lambda * log E_avg                              (unconstrained)
    bits penalty    lambda * [max(0, w_avg - w_target) + max(0, a_avg - a_target)]

Average weight bits are weighted by each layer's weight count; average activation bits by
the layer's input elements (or, with ``max_act``, the bits of the largest input map); average
noise bits by MACs. Every average goes through :func:`weighted_mean`.

Energy per inference in joules (docs/hardware.md), per layer and in total, with
:class:`EnergyCosts`:

    optical  MACs x E x h nu                         (E photons per MAC, h nu the photon energy)
    ADC      T x outputs x FOM_adc x 2^b_adc          (one conversion per tile partial sum)
    DAC      inputs x FOM_dac x 2^b_act               (one conversion per input value, reused by its MACs)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import torch
from torch import nn

from noisesim.batches import call_model
from noisesim.config import PHOTON_ENERGY_AJ, WALDEN_FOM_FJ, SimConfig
from noisesim.context import noise_disabled
from noisesim.coverage import Coverage, counting_macs, coverage_from, coverage_of
from noisesim.nn.base import SimLayer
from noisesim.nn.prepare import sim_layers

if TYPE_CHECKING:  # pandas loads when a report is made, not with noisesim
    import pandas as pd


# -- pure functions ------------------------------------------------------------
def weighted_mean(values: Sequence[torch.Tensor | float], weights: Sequence[float]) -> torch.Tensor:
    """sum_l mean(values_l) * w_l / sum_l w_l in float64 (differentiable in ``values``)."""
    total = float(sum(weights))
    if total <= 0:
        raise ValueError("nothing to average over (no MACs, weights or inputs counted): run a forward pass first")
    return sum(torch.as_tensor(v).to(torch.float64).mean() * (w / total) for v, w in zip(values, weights))


def energy_penalty(avg_energy: torch.Tensor, target: Optional[float], lambd: float,
                   constrained: bool = True) -> torch.Tensor:
    """lambda * max(0, log E_avg - log E_target), or lambda * log E_avg without the constraint."""
    log_e = torch.log(avg_energy)
    if not constrained or target is None:
        return lambd * log_e
    return lambd * torch.clamp(log_e - math.log(target), min=0)


def bits_penalty(w_avg: torch.Tensor, a_avg: Optional[torch.Tensor], w_target: Optional[float],
                 a_target: Optional[float], lambd: float) -> torch.Tensor:
    """lambda * [max(0, w_avg - w_target) + max(0, a_avg - a_target)] (missing targets count 0)."""
    pen = torch.zeros((), dtype=w_avg.dtype, device=w_avg.device)
    if w_target is not None:
        pen = pen + torch.clamp(w_avg - w_target, min=0)
    if a_avg is not None and a_target is not None:
        pen = pen + torch.clamp(a_avg - a_target, min=0)
    return lambd * pen


def photons_to_aj(photons: float | torch.Tensor, photon_energy: float = PHOTON_ENERGY_AJ):
    """Energy per MAC in attojoules."""
    return photons * photon_energy


@dataclass(frozen=True)
class EnergyCosts:
    """What one photon and one conversion cost: photon_energy in aJ (h nu; 0.128 at 1550 nm), adc_fom and
    dac_fom in fJ per conversion step (Walden figure of merit: a b-bit conversion costs FOM 2^b)."""

    photon_energy: float = PHOTON_ENERGY_AJ
    adc_fom: float = WALDEN_FOM_FJ
    dac_fom: float = WALDEN_FOM_FJ

    @classmethod
    def of(cls, cfg: SimConfig) -> "EnergyCosts":
        return cls(cfg.photon_energy, cfg.adc_fom, cfg.dac_fom)


def layer_joules(m: SimLayer, costs: EnergyCosts) -> dict[str, float]:
    """Energy per inference (one sample) of layer ``m`` in joules at its last forward: optical, adc, dac and
    their total (a part the layer does not model, e.g. the ADC of a layer without one, counts 0)."""
    e = m.energy()
    optical = 0.0 if e is None else m.macs * float(e.detach().float().mean()) * costs.photon_energy * 1e-18
    adc = 0.0 if m.adc is None else m.conversions * costs.adc_fom * 2 ** m.adc.bits * 1e-15
    act_bits = m.act_quant.mean_bits()
    dac = 0.0 if not math.isfinite(act_bits) else m.input_conversions() * costs.dac_fom * 2 ** act_bits * 1e-15
    return {"optical": optical, "adc": adc, "dac": dac, "total": optical + adc + dac}


# -- model-level quantities ------------------------------------------------------
def _layers(model: nn.Module) -> list[SimLayer]:
    layers = sim_layers(model)
    if not layers:
        raise ValueError("model has no instrumented layer: call noisesim.prepare first")
    return layers


def average_energy(model: nn.Module) -> torch.Tensor:
    """MAC-weighted average energy (photons/MAC) over the layers that have noise; differentiable."""
    layers = [m for m in _layers(model) if m.noise is not None]
    if not layers:
        raise ValueError("no layer has a noise model (noise_type none)")
    return weighted_mean([m.energy() for m in layers], [m.macs for m in layers])


def average_weight_bits(model: nn.Module) -> Optional[torch.Tensor]:
    """Weight-count weighted average weight bits (differentiable when bits are learnable)."""
    layers = [m for m in _layers(model) if m.weight_quant is not None and m.weight_quant.enabled]
    if not layers:
        return None
    return weighted_mean([m.weight_quant.bits() for m in layers], [m.weight_count for m in layers])


def average_act_bits(model: nn.Module, max_act: bool = False) -> Optional[torch.Tensor]:
    """Input-element weighted average activation bits, or the bits of the largest input map."""
    layers = [m for m in _layers(model) if m.act_quant.enabled]
    if not layers:
        return None
    if max_act:
        return torch.as_tensor(max(layers, key=lambda m: m.in_elems).act_quant.bits(), dtype=torch.float32).mean()
    return weighted_mean([m.act_quant.bits() for m in layers], [m.in_elems for m in layers])


def _noise_bits(m: SimLayer) -> Optional[torch.Tensor]:
    n = m.noise
    return n.noise_bits() if n is not None and math.isfinite(n.output_range()) else None


def average_noise_bits(model: nn.Module) -> Optional[torch.Tensor]:
    """MAC-weighted average noise bits (ENOB equivalent) over calibrated noisy layers."""
    layers = [m for m in _layers(model) if _noise_bits(m) is not None]
    if not layers:
        return None
    return weighted_mean([_noise_bits(m) for m in layers], [m.macs for m in layers])


@torch.no_grad()
def count_macs(model: nn.Module, example_input) -> int:
    """Run one noise-free forward on ``example_input`` and return MACs per sample."""
    was_training = model.training
    model.eval()
    with noise_disabled(model):
        call_model(model, example_input)
    model.train(was_training)
    return sum(m.macs for m in _layers(model))


@torch.no_grad()
def measure_coverage(model: nn.Module, example_input) -> Coverage:
    """One noise-free forward on ``example_input`` under PyTorch's FlopCounterMode: the MACs run inside
    instrumented layers against all MACs, with the modules that ran the rest (``noisesim.coverage``)."""
    was_training = model.training
    model.eval()
    try:
        with noise_disabled(model), counting_macs() as counter:
            call_model(model, example_input)
    finally:
        model.train(was_training)
    return coverage_from(model, counter)


def _value(fn: Callable[[], Optional[torch.Tensor]]) -> float:
    """A model average as a float; NaN where it does not apply."""
    try:
        v = fn()
    except ValueError:
        return float("nan")
    return float("nan") if v is None else float(v.detach())


def energy_report(model: nn.Module, example_input=None, photon_energy: float = PHOTON_ENERGY_AJ,
                  costs: Optional[EnergyCosts] = None) -> pd.DataFrame:
    """One row per instrumented layer.

    Columns: name, kind, fan_in, macs (per sample), e_mac (photons, mean over channels),
    e_mac_aj, e_min, e_max, weight_bits, act_bits, noise_type, weights, in_elems, snr
    (linear, if recorded), snr_db, noise_bits (ENOB equivalent, mean over channels); the hardware: tiles
    (partial sums per output), adc_bits, conversions (ADC conversions per sample), adc_clip_rate (of the
    conversions since the last reset), and energy per inference in joules: energy_optical_j, energy_adc_j,
    energy_dac_j, energy_j (``costs``; default: ``photon_energy`` and the default converter costs).
    ``example_input`` runs a noise-free forward first (needed if none has run yet).
    ``df.attrs`` holds the totals: macs, avg_energy (photons), avg_energy_aj, avg_weight_bits, avg_act_bits,
    avg_noise_bits (MAC-weighted), energy_j / energy_optical_j / energy_adc_j / energy_dac_j (per inference),
    energy_per_mac_j, adc_clip_rate (over every ADC), and ``coverage`` (the fraction of all MACs that run instrumented,
    measured at calibration; NaN before) with ``uncovered`` (what runs uninstrumented, one text).
    """
    if example_input is not None:
        count_macs(model, example_input)
    costs = costs or EnergyCosts(photon_energy=photon_energy)
    nan = float("nan")
    rows = []
    for m in _layers(model):
        joules = layer_joules(m, costs)
        e = m.energy()
        e = None if e is None else e.detach().float()
        noise = m.noise
        snr = noise.snr() if noise is not None else nan
        nb = _noise_bits(m)
        rows.append({
            "name": m.name, "kind": m.kind, "fan_in": m.fan_in, "macs": m.macs,
            "e_mac": nan if e is None else e.mean().item(),
            "e_mac_aj": nan if e is None else photons_to_aj(e.mean().item(), photon_energy),
            "e_min": nan if e is None else e.min().item(),
            "e_max": nan if e is None else e.max().item(),
            "weight_bits": m.weight_quant.mean_bits() if m.weight_quant is not None else nan,
            "act_bits": m.act_quant.mean_bits(),
            "noise_type": noise.kind if noise is not None else "none",
            "weights": m.weight_count, "in_elems": m.in_elems,
            "snr": snr, "snr_db": 10 * math.log10(snr) if snr > 0 and math.isfinite(snr) else nan,
            "noise_bits": nan if nb is None else nb.mean().item(),
            "tiles": m.tiles, "adc_bits": nan if m.adc is None else m.adc.bits, "conversions": m.conversions,
            "adc_clip_rate": nan if m.adc is None else m.adc.clip_rate(),
            **{f"energy_{k}_j" if k != "total" else "energy_j": v for k, v in joules.items()},
        })
    import pandas as pd

    df = pd.DataFrame(rows)
    with torch.no_grad():
        avg_e = _value(lambda: average_energy(model))
        df.attrs.update(macs=int(df["macs"].sum()), avg_energy=avg_e,
                        avg_energy_aj=photons_to_aj(avg_e, photon_energy),
                        avg_weight_bits=_value(lambda: average_weight_bits(model)),
                        avg_act_bits=_value(lambda: average_act_bits(model)),
                        avg_noise_bits=_value(lambda: average_noise_bits(model)))
    adcs = [m.adc for m in _layers(model) if m.adc is not None]
    conversions = sum(float(a.conversions) for a in adcs)
    df.attrs.update({k: float(df[k].sum()) for k in ("energy_j", "energy_optical_j", "energy_adc_j", "energy_dac_j")},
                    energy_per_mac_j=float(df["energy_j"].sum()) / max(int(df["macs"].sum()), 1),
                    adc_clip_rate=sum(float(a.clipped) for a in adcs) / conversions if conversions else nan)
    cov = coverage_of(model)
    df.attrs.update(coverage=nan if cov is None else cov.fraction,
                    uncovered="" if cov is None else "; ".join(
                        f"{u.module or '(root)'} ({'/'.join(u.operators)}, {u.macs} MACs)" for u in cov.uncovered))
    return df


def channel_report(model: nn.Module) -> pd.DataFrame:
    """One row per output channel of every noisy layer: name, fan_in, channel, e_mac (photons),
    snr_db (NaN unless recorded), noise_bits (NaN before calibration)."""
    import pandas as pd

    frames = []
    for m in _layers(model):
        n = m.noise
        if n is None:
            continue
        snr = n.channel_snr().cpu()
        nb = _noise_bits(m)
        bits = torch.full((n.channels,), float("nan")) if nb is None else nb.detach().float().cpu()
        frames.append(pd.DataFrame({
            "name": m.name, "fan_in": m.fan_in, "channel": range(n.channels),
            "e_mac": n.energy().detach().float().cpu().expand(n.channels).numpy(),
            "snr_db": (10 * torch.log10(snr)).numpy(), "noise_bits": bits.expand(n.channels).numpy()}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
