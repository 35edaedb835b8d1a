"""Precision that moves while a network trains: adaptive per-layer weight bits from gradient statistics
(AdaptiveDPC) and cyclic precision training (CPT, Fu et al. 2021, "CPT: Efficient deep neural network
training via cyclic precision").

AdaptiveDPC works on a ``noisesim.prepare``d model whose layers quantize their weights; each layer's
bit-width is set with ``layer.set_bit_width(bits)`` (32 = float, for debugging one layer). Its update rule,
for layer l with gradient statistic s_l (by default the variance of dL/dW_l over its elements,
averaged over the steps since the last update):

    b_l = clip(round(initial_bits + delta · log2(s_l / max_k s_k)), min_bits, initial_bits)

so the layer whose gradients are most active keeps ``initial_bits`` and every halving of a layer's
statistic below it costs ``delta`` bits (delta 0.5-1.0; higher is more aggressive). Then the
cosine-similarity guard raises b_l one bit at a time while cos(Q_b(W_l), W_l) < ``cosine_threshold``
(0.95), so no layer falls to a precision that no longer resembles its float weights (the guard sets
the effective lower bound; tune it with the threshold).

CPT cycles one bit-width between ``low`` and ``high``: within each of ``cycles`` equal periods of
the training steps, b_t = ceil(low + (high - low) · (1 - cos(π u)) / 2), u = position in the
period in [0, 1): every period starts at ``low`` and climbs to ``high``. With plain QAT every layer
uses b_t; with AdaptiveDPC each layer uses min(b_l, b_t).

    dpc = AdaptiveDPC(sim, initial_bits=8, min_bits=4, delta=0.5)
    history = train_with_adaptive_dpc(sim, train_loader, val_loader, nn.CrossEntropyLoss(), optimizer,
                                      scheduler, dpc=dpc, epochs=5, cpt=CyclicPrecision(3, 8, cycles=4))
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

import torch
from torch import nn

from noisesim.nn.base import SimLayer
from noisesim.nn.prepare import sim_layers
from noisesim.quant.functional import fake_quant_ste, qparams
from noisesim.config import bits_problem
from noisesim.settings import ConfigError, at_least_one, in_range, positive, setting
from noisesim.train.loop import StepHooks, TrainConfig, train

P = "precision schedules"


@dataclass(frozen=True)
class AdaptiveDPCSettings:
    """The command-line settings of AdaptiveDPC (``main.py precision --method adaptive_dpc``)."""

    initial_bits: int = setting(8, "AdaptiveDPC: starting weight bits", P, unit="bits", check=bits_problem)
    min_bits: int = setting(4, "AdaptiveDPC: lowest weight bits", P, unit="bits", check=bits_problem)
    delta: float = setting(0.5, "AdaptiveDPC: bits per halving of a layer's gradient statistic below the most "
                           "active layer's", P, unit="bits", check=positive)
    cosine_threshold: float = setting(0.95, "AdaptiveDPC guard: a layer's bits rise while cos(Q(W), W) is below "
                                      "this", P, check=in_range(0, 1))

    def __post_init__(self):
        if self.min_bits > self.initial_bits:
            raise ConfigError(f"--min_bits {self.min_bits} is above --initial_bits {self.initial_bits}", "min_bits")


@dataclass(frozen=True)
class CPTSettings:
    """The command-line settings of cyclic precision training (``main.py precision --method cpt``)."""

    cpt_low: int = setting(3, "CPT lowest bits", P, unit="bits", check=bits_problem)
    cpt_high: int = setting(8, "CPT highest bits", P, unit="bits", check=bits_problem)
    cpt_cycles: int = setting(8, "CPT cycles over the whole training", P, check=at_least_one)

    def __post_init__(self):
        if self.cpt_low > self.cpt_high:
            raise ConfigError(f"--cpt_low {self.cpt_low} is above --cpt_high {self.cpt_high}", "cpt_low")

STATISTICS = ("variance", "norm", "mean_abs")


def _weight_layers(model: nn.Module) -> list[SimLayer]:
    layers = [m for m in sim_layers(model) if m.weight_quant is not None and m.weight_quant.cfg.bits is not None]
    if not layers:
        raise ValueError("AdaptiveDPC needs a prepared model with quantized weights (noisesim.prepare with weight_bits)")
    return layers


def cosine_similarity(layer: SimLayer, bits: float) -> float:
    """cos(Q_bits(W), W) for the layer's weights on its quantizer's range at ``bits``."""
    q, w = layer.weight_quant, layer.weight.detach()
    scale, zp, qmin, qmax = qparams(q.lo.detach(), q.hi.detach(), bits, q.cfg.symmetric)
    shape = (-1,) + (1,) * (w.dim() - 1) if scale.numel() > 1 else ()
    wq = fake_quant_ste(w, scale.reshape(shape), zp.reshape(shape), qmin, qmax)
    return float(torch.nn.functional.cosine_similarity(wq.reshape(1, -1), w.reshape(1, -1)).item())


class AdaptiveDPC:
    """Adaptive dynamic precision: per-layer weight bits from gradient statistics (rule in the module docstring)."""

    def __init__(self, model: nn.Module, initial_bits: int = 8, min_bits: int = 4, delta: float = 0.5,
                 statistic: str = "variance", cosine_threshold: float = 0.95):
        if not 2 <= min_bits <= initial_bits <= 16:
            raise ValueError(f"need 2 <= min_bits ({min_bits}) <= initial_bits ({initial_bits}) <= 16")
        if delta < 0:
            raise ValueError(f"delta must be >= 0, got {delta}")
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
        self.model, self.initial_bits, self.min_bits, self.delta = model, initial_bits, min_bits, delta
        self.statistic, self.cosine_threshold = statistic, cosine_threshold
        self.layers = {m.name: m for m in _weight_layers(model)}
        self.bit_widths: dict[str, int] = {name: initial_bits for name in self.layers}
        self._sums: dict[str, float] = {}
        self._count = 0

    def quantize_weights(self, cap: Optional[int] = None) -> None:
        """Set every layer to its bit-width (at most ``cap``, e.g. a CPT schedule's)."""
        for name, layer in self.layers.items():
            layer.set_bit_width(self.bit_widths[name] if cap is None else min(self.bit_widths[name], cap))

    @torch.no_grad()
    def collect_gradient_stats(self) -> dict[str, dict[str, float]]:
        """Per layer: ``norm`` (||dL/dW||), ``variance`` and ``mean_abs`` of dL/dW over its elements, from the
        gradients now on the weights (call between backward and the optimiser step). Also accumulated for
        ``update_precision()`` without arguments."""
        stats = {}
        for name, layer in self.layers.items():
            g = layer.weight.grad
            if g is None:
                continue
            g = g.detach().float()
            stats[name] = {"norm": float(g.norm()), "variance": float(g.var(unbiased=False)),
                           "mean_abs": float(g.abs().mean())}
            self._sums[name] = self._sums.get(name, 0.0) + stats[name][self.statistic]
        self._count += 1
        return stats

    def target_bits(self, statistic: dict[str, float]) -> dict[str, int]:
        """b_l = clip(round(initial_bits + delta log2(s_l / max s)), min_bits, initial_bits), before the guard."""
        top = max(statistic.values())
        out = {}
        for name, s in statistic.items():
            ratio = math.log2(s / top) if s > 0 and top > 0 else -math.inf
            b = self.initial_bits + self.delta * ratio if math.isfinite(ratio) else self.min_bits
            out[name] = int(min(max(round(b), self.min_bits), self.initial_bits))
        return out

    def update_precision(self, gradient_stats: Optional[dict[str, dict[str, float]]] = None) -> dict[str, int]:
        """New bit-widths from ``gradient_stats`` (one ``collect_gradient_stats()`` result; default: the mean
        of those collected since the last update), then the cosine guard; returns (and keeps) them."""
        if gradient_stats is None:
            if not self._count:
                raise ValueError("no gradient statistics collected since the last update")
            statistic = {k: v / self._count for k, v in self._sums.items()}
        else:
            statistic = {k: v[self.statistic] for k, v in gradient_stats.items()}
        self._sums, self._count = {}, 0
        for name, b in self.target_bits(statistic).items():
            while b < self.initial_bits and cosine_similarity(self.layers[name], b) < self.cosine_threshold:
                b += 1
            self.bit_widths[name] = b
        return dict(self.bit_widths)

    def average_bits(self) -> float:
        """Weight-count weighted average of the bit-widths."""
        n = {k: m.weight.numel() for k, m in self.layers.items()}
        return sum(self.bit_widths[k] * n[k] for k in n) / sum(n.values())


@dataclass(frozen=True)
class CyclicPrecision:
    """CPT: the bit-width at step t (1-based) of ``total_steps``, cycling from ``low`` up to ``high`` ``cycles``
    times (formula in the module docstring)."""

    low: int
    high: int
    cycles: int = 8
    total_steps: Optional[int] = None

    def __post_init__(self):
        if not 2 <= self.low <= self.high <= 16 or self.cycles < 1:
            raise ValueError(f"need 2 <= low ({self.low}) <= high ({self.high}) <= 16 and cycles >= 1")

    def bits(self, step: int, total_steps: Optional[int] = None) -> int:
        total = total_steps or self.total_steps
        if not total:
            raise ValueError("CyclicPrecision needs total_steps")
        period = total / self.cycles
        u = ((step - 1) % period) / period
        return int(math.ceil(self.low + (self.high - self.low) * (1 - math.cos(math.pi * u)) / 2 - 1e-9))

    def schedule(self, total_steps: Optional[int] = None) -> list[int]:
        total = total_steps or self.total_steps
        return [self.bits(t, total) for t in range(1, total + 1)]


class _Criterion:
    """A loss function as the training loop's task (predictions: argmax; metric: accuracy)."""

    name = "accuracy"

    def __init__(self, criterion: Callable):
        self.criterion = criterion

    def loss(self, out, targets):
        return self.criterion(out, targets)

    def predictions(self, out):
        return out.argmax(-1)

    def metric(self, outputs, targets):
        return float((torch.cat([o.argmax(-1) for o in outputs]) == torch.cat(targets)).float().mean())


@torch.no_grad()
def validate(model: nn.Module, val_loader: Iterable, criterion: Callable) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``val_loader`` (eval mode)."""
    was = model.training
    model.eval()
    total, loss, correct = 0, 0.0, 0
    for x, y in val_loader:
        out = model(x)
        loss += float(criterion(out, y)) * len(y)
        correct += int((out.argmax(-1) == y).sum())
        total += len(y)
    model.train(was)
    return {"loss": loss / total, "accuracy": correct / total}


def print_bit_width_distribution(dpc: AdaptiveDPC, title: str = "") -> str:
    """A one-line histogram of the layers' bit-widths (printed and returned)."""
    counts: dict[int, int] = {}
    for b in dpc.bit_widths.values():
        counts[b] = counts.get(b, 0) + 1
    text = (f"{title}: " if title else "") + ", ".join(f"{b} bits x{counts[b]}" for b in sorted(counts)) + \
        f" (average {dpc.average_bits():.2f} bits, weight-count weighted)"
    print(text)
    return text


def train_with_adaptive_dpc(model: nn.Module, train_loader: Iterable, val_loader: Iterable, criterion: Callable,
                            optimizer: torch.optim.Optimizer, scheduler: Any = None,
                            dpc: Optional[AdaptiveDPC] = None, epochs: int = 1, cpt: Optional[CyclicPrecision] = None,
                            verbose: bool = True) -> list[dict[str, Any]]:
    """Quantization-aware training with bit-widths updated after every epoch (AdaptiveDPC) and/or cycled every
    step (CPT), in the one training loop. ``optimizer`` covers the parameters to train (and ``scheduler``,
    if given, is stepped after every optimiser step). Returns one record per epoch: validation loss and
    accuracy, average bits and the per-layer bit-widths."""
    task = _Criterion(criterion)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for p in params:
        p.requires_grad_(True)
    steps = len(train_loader)
    total = steps * epochs
    history = []
    if dpc is not None:
        dpc.quantize_weights()
    for epoch in range(1, epochs + 1):
        def before(step, epoch=epoch):
            if cpt is not None:
                cap = cpt.bits((epoch - 1) * steps + step, total)
                if dpc is not None:
                    dpc.quantize_weights(cap)
                else:
                    for layer in _weight_layers(model):
                        layer.set_bit_width(cap)

        hooks = StepHooks(before_step=before if cpt is not None else None,
                          after_backward=(lambda step: dpc.collect_gradient_stats()) if dpc is not None else None)
        model.train()
        train(model, params, train_loader, task, TrainConfig(steps=steps, progress=False, desc=f"epoch {epoch}"),
              hooks=hooks, optimizer=optimizer, scheduler=scheduler)
        if dpc is not None:
            dpc.update_precision()
            dpc.quantize_weights()
        elif cpt is not None:
            for layer in _weight_layers(model):
                layer.set_bit_width(cpt.high)
        record = {"epoch": epoch, **validate(model, val_loader, criterion)}
        if dpc is not None:
            record.update(average_bits=dpc.average_bits(), bit_widths=dict(dpc.bit_widths))
            if verbose:
                print_bit_width_distribution(dpc, f"epoch {epoch}")
        history.append(record)
    model.eval()
    return history
