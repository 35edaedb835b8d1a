"""Nearly lossless bit switching (Double Rounding, Huang et al. 2025, arXiv 2502.01199).

One network serves a list of weight bit-widths, e.g. 8, 6, 4, 2, from the integers of the highest one
alone. With Δ the shared per-channel step of the top precision T and k = T - b:

    q_T = clamp(round(w / Δ), ±(2^(T-1) - 1))                    the stored integers
    q_b = clamp(round(q_T / 2^k), ±(2^(b-1) - 1)),  Δ_b = Δ · 2^k  rounding the stored integers again

so switching precision is a runtime call (``set_bit_width``) and a checkpoint holds q_T and Δ only
(``save_integers``). Rounding is half to even, as ``torch.round``. Against quantizing the float weights
directly on the same grid, round(w / Δ_b), the two agree except where w / Δ_b lies within
2^-(k+1) of a half-integer (the first rounding moved it across the second's boundary); there they
differ by exactly one level.

Training (``train_double_rounding``) keeps float weights and a learnable Δ per output channel (a
unified representation: every precision quantizes through q_T). By default every step trains all
precisions jointly: the loss is the mean over the bit-widths (weighted by ``probabilities`` when given)
of each precision's task loss, and with ``distill`` a lower precision learns half from the labels and
half from the top precision's predictions (KL divergence to its detached softmax, as multi-precision
training usually does: Jin et al. 2020, "AdaBits"; Yu et al. 2021, "Any-Precision DNNs"). ``joint=False``
draws one precision per step with those probabilities instead. Each precision has its own activation
ranges (``PrecisionSwitch``: a PACT clip learned for 8 bits is far too wide for 2), and the learning
steps are normalised: the gradient that reaches Δ from precision b is divided by 2^k (dL/dΔ = 2^k dL/dΔ_b
would otherwise let the lowest precision dominate) and scaled by LSQ's g_b = 1 / sqrt(n · q_max,b), n the
weights of the channel, so that each precision moves its grid Δ_b at a comparable rate. ``mixed=True``
trains a one-shot supernet instead: every step draws a bit-width per layer;
``noisesim.precision.subnets.search_subnets`` then picks per-layer bits under average-bit budgets from the
Hessian traces of the layers' weights and an exact integer program.
"""
from __future__ import annotations

import copy
import dataclasses
import random
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from noisesim.io import save_checkpoint
from noisesim.nn.base import SimLayer
from noisesim.nn.prepare import sim_layers
from noisesim.ops import round_ste
from noisesim.quant.fake_quant import FakeQuantize
from noisesim.quant.functional import scale_gradient
from noisesim.train.loop import StepHooks, TrainConfig, evaluate, train
from noisesim.config import bits_problem
from noisesim.settings import ConfigError, setting
from noisesim.train.qat import qat_parameters

P = "precision schedules"


@dataclasses.dataclass(frozen=True)
class DoubleRoundingSettings:
    """The command-line settings of Double Rounding (``main.py precision --method double_rounding`` or
    ``supernet``)."""

    bits: tuple = setting((8, 6, 4, 2), "Double Rounding precisions", P, unit="bits", check=bits_problem)
    probabilities: tuple = setting((), "Double Rounding: each of --bits' weight in the joint loss, or with "
                                   "--no-joint its probability of being drawn per step (default: equal)", P,
                                   parse=float)
    joint: bool = setting(True, "Double Rounding: train every precision at every step, or draw one per step", P)
    distill: bool = setting(True, "Double Rounding, joint: lower precisions also learn the top precision's "
                            "predictions", P)

    def __post_init__(self):
        if not self.bits or len(set(self.bits)) != len(self.bits):
            raise ConfigError(f"--bits {' '.join(map(str, self.bits))}: each precision once", "bits")
        if self.probabilities and len(self.probabilities) != len(self.bits):
            raise ConfigError(f"--probabilities: give one per --bits value ({len(self.bits)})", "probabilities")
        if self.probabilities and (min(self.probabilities) < 0 or sum(self.probabilities) <= 0):
            raise ConfigError("--probabilities: weights must be >= 0 and not all 0", "probabilities")


def double_round(q_top: torch.Tensor, top: int, bits: int) -> torch.Tensor:
    """q_b = clamp(round(q_T / 2^(T-b)), ±(2^(b-1) - 1)) (integers as floats; straight-through gradient)."""
    qmax = 2 ** (bits - 1) - 1
    return round_ste(q_top / 2 ** (top - bits)).clamp(-qmax, qmax)


class DoubleRoundingQuantizer(FakeQuantize):
    """A layer's weight quantizer for the double-rounding representation: a learnable step Δ per output
    channel at ``top`` bits, and the bit-width in use (``set_bits``)."""

    def __init__(self, base: FakeQuantize, weight: torch.Tensor, top: int):
        cfg = dataclasses.replace(base.cfg, bits=float(top), symmetric=True, per_channel=True,
                                  learnable_range=False, learnable_bits=False)
        super().__init__(cfg, channels=weight.shape[0], ch_axis=0)
        self.top, self.current = top, top
        qmax = 2 ** (top - 1) - 1
        step = weight.detach().abs().flatten(1).amax(1).clamp_min(1e-8) / qmax
        self.step = nn.Parameter(step)
        self.calibrated.fill_(True)

    @property
    def learnable(self) -> bool:
        return True  # the step trains; never cache quantized weights across its updates

    def set_bits(self, bits: float) -> None:
        if not 2 <= bits <= self.top or float(bits) != int(bits):
            raise ValueError(f"bit-width {bits}: must be a whole number in 2-{self.top}")
        self.current = int(bits)
        self.cfg = dataclasses.replace(self.cfg, bits=float(bits))
        self.touch()

    def bits(self) -> float:
        return float(self.current)

    def _step(self, ndim: int) -> torch.Tensor:
        return self.step.reshape((-1,) + (1,) * (ndim - 1)).abs().clamp_min(1e-12)

    def top_integers(self, w: torch.Tensor, step: Optional[torch.Tensor] = None) -> torch.Tensor:
        """q_T = clamp(round(w / Δ), ±(2^(T-1) - 1)) (integers as floats; straight-through gradient)."""
        qmax = 2 ** (self.top - 1) - 1
        return round_ste(w / (self._step(w.dim()) if step is None else step)).clamp(-qmax, qmax)

    def integers(self, w: torch.Tensor, bits: Optional[int] = None) -> torch.Tensor:
        """q_b of ``w`` (integers as floats), through the stored top-precision integers."""
        return double_round(self.top_integers(w), self.top, bits or self.current)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """Δ_b · q_b, with the gradient reaching Δ scaled by g_b / 2^k (module docstring)."""
        if not self.enabled:
            return w
        k, qmax = self.top - self.current, 2 ** (self.current - 1) - 1
        g = 1.0 / (2 ** k * (w[0].numel() * qmax) ** 0.5)
        step = scale_gradient(self._step(w.dim()), g)
        return double_round(self.top_integers(w, step), self.top, self.current) * (step * 2 ** k)

    def full_range(self) -> torch.Tensor:
        return 2 * (2 ** (self.current - 1) - 1) * self.step.detach().abs() * 2 ** (self.top - self.current)

    def extra_repr(self) -> str:
        return f"double rounding {self.current}b of {self.top}b, per-channel learnable step"


class PrecisionSwitch(nn.Module):
    """An activation quantizer with its own range (and learnable clip) for each bit-width: ``set_bits(b)``
    switches to precision b's copy; everything else (``full_range``, ``cfg``, ...) is the active copy's."""

    def __init__(self, base: FakeQuantize, bits: Sequence[int]):
        super().__init__()
        self.copies = nn.ModuleDict()
        for b in bits:
            q = copy.deepcopy(base)
            q.set_bits(b)
            self.copies[str(b)] = q
        self.current = str(max(bits))

    @property
    def active(self) -> FakeQuantize:
        return self.copies[self.current]

    def set_bits(self, bits: float) -> None:
        if str(int(bits)) not in self.copies:
            raise ValueError(f"activation bits {bits}: not one of {', '.join(self.copies)}")
        self.current = str(int(bits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.active(x)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.copies[self.__dict__["current"]], name)

    def extra_repr(self) -> str:
        return f"active {self.current} bits of {', '.join(self.copies)}"


def _switches(layer: SimLayer) -> list[tuple[str, PrecisionSwitch]]:
    return [(a, q) for a in ("act_quant", "act_quant_b") if isinstance(q := getattr(layer, a, None), PrecisionSwitch)]


def _layers(model: nn.Module) -> list[SimLayer]:
    layers = [m for m in sim_layers(model) if m.weight_quant is not None and m.weight_quant.cfg.bits is not None]
    if not layers:
        raise ValueError("double rounding needs a prepared model with quantized weights")
    return layers


class MultiPrecision:
    """A prepared model whose weight quantizers are double-rounding ones over ``bits`` (highest first)."""

    def __init__(self, model: nn.Module, bits: Sequence[int] = (8, 6, 4, 2), act_bits_follow: bool = True):
        self.model, self.bits = model, tuple(sorted({int(b) for b in bits}, reverse=True))
        self.top, self.act_bits_follow = self.bits[0], act_bits_follow
        self.layers = {m.name: m for m in _layers(model)}
        for m in self.layers.values():
            if not isinstance(m.weight_quant, DoubleRoundingQuantizer):
                m.weight_quant = DoubleRoundingQuantizer(m.weight_quant, m.weight, self.top)
            if act_bits_follow:
                for attr in ("act_quant", "act_quant_b"):
                    q = getattr(m, attr, None)
                    if isinstance(q, FakeQuantize) and q.cfg.bits is not None and not q.cfg.dynamic:
                        setattr(m, attr, PrecisionSwitch(q, self.bits))

    def set_bit_width(self, bits: int | dict[str, int]) -> None:
        """Switch every layer (an int) or the named layers (a dict name -> bits) to these bits."""
        per_layer = bits if isinstance(bits, dict) else {n: bits for n in self.layers}
        unknown = set(per_layer) - set(self.layers)
        if unknown:
            raise ValueError(f"not double-rounding layers: {', '.join(sorted(unknown))}")
        for name, b in per_layer.items():
            layer = self.layers[name]
            layer.weight_quant.set_bits(b)
            if self.act_bits_follow and not isinstance(bits, dict):
                for q in layer.activation_quantizers():
                    if q.cfg.bits is not None:
                        q.set_bits(b)

    def bit_widths(self) -> dict[str, int]:
        return {n: m.weight_quant.current for n, m in self.layers.items()}

    def average_bits(self, bits: Optional[dict[str, int]] = None) -> float:
        bits = bits or self.bit_widths()
        n = {k: m.weight.numel() for k, m in self.layers.items()}
        return sum(bits[k] * n[k] for k in n) / sum(n.values())

    def step_parameters(self) -> list[nn.Parameter]:
        return [m.weight_quant.step for m in self.layers.values()]

    # -- integers only -------------------------------------------------------------
    @torch.no_grad()
    def integers(self) -> dict[str, dict[str, torch.Tensor]]:
        """Per layer: the top-precision integers (int8 up to 8 bits), the step Δ, the bias and, per precision,
        the activation range (``act_quant.<bits>.lo`` / ``.hi``)."""
        dtype = torch.int8 if self.top <= 8 else torch.int16
        out = {}
        for name, m in self.layers.items():
            q = m.weight_quant
            ints = q.top_integers(m.weight).to(dtype)
            out[name] = {"weight_int": ints, "step": q.step.detach().abs().clone()}
            if m.bias is not None:
                out[name]["bias"] = m.bias.detach().clone()
            for attr, switch in _switches(m):
                for b, aq in switch.copies.items():
                    out[name][f"{attr}.{b}.lo"], out[name][f"{attr}.{b}.hi"] = aq.lo.detach(), aq.hi.detach()
        return out

    def save_integers(self, path: str | Path) -> int:
        """Write the integers, steps, biases and each precision's activation ranges (no float weights); returns
        the file size in bytes."""
        save_checkpoint(path, {"top_bits": torch.tensor(self.top), "bits": torch.tensor(self.bits),
                               "layers": self.integers()})
        return Path(path).stat().st_size

    @torch.no_grad()
    def load_integers(self, path: str | Path) -> None:
        """Set every layer's weights to Δ · q_T from a ``save_integers`` file (the only weights it needs)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        for name, d in state["layers"].items():
            m = self.layers[name]
            m.weight_quant.step.copy_(d["step"])
            m.weight.copy_(d["weight_int"].to(m.weight.dtype) * d["step"].reshape((-1,) + (1,) * (m.weight.dim() - 1)))
            if "bias" in d:
                m.bias.copy_(d["bias"])
            m.weight_quant.touch()
            for attr, switch in _switches(m):
                for b, aq in switch.copies.items():
                    aq.lo.copy_(d[f"{attr}.{b}.lo"])
                    aq.hi.copy_(d[f"{attr}.{b}.hi"])
                    aq.calibrated.fill_(True)
                    aq.touch()


@dataclasses.dataclass(frozen=True)
class DoubleRoundingConfig:
    """epochs, lr (SGD with Nesterov momentum, cosine schedule), weight_decay; joint: train every precision at
    every step (default), else draw one per step; probabilities: each of ``MultiPrecision.bits``' weight in the
    joint loss, or its probability of being drawn (default: equal); distill: lower precisions also learn from
    the top precision's predictions (joint training of classifiers); mixed: a supernet (one bit-width per layer
    per step, drawn); seed: of the drawing."""

    epochs: float = 1.0
    lr: float = 1e-3
    weight_decay: float = 1e-4
    joint: bool = True
    probabilities: Optional[tuple[float, ...]] = None
    distill: bool = True
    mixed: bool = False
    seed: int = 0
    progress: bool = True


class _EveryPrecision(nn.Module):
    """The multi-precision model run at each of its bit-widths in turn: outputs stacked, top precision first."""

    def __init__(self, mp: MultiPrecision):
        super().__init__()
        self.net, self.mp = mp.model, mp

    def forward(self, *args, **kwargs) -> torch.Tensor:
        outs = []
        for b in self.mp.bits:
            self.mp.set_bit_width(b)
            outs.append(self.net(*args, **kwargs))
        self.mp.set_bit_width(self.mp.top)
        return torch.stack(outs)


class _JointLoss:
    """The task's loss averaged over precisions with ``weights``; with ``distill``, each lower precision's is
    half its task loss and half KL(top precision's softmax, detached || its softmax). Predictions: the top's."""

    def __init__(self, task: Any, weights: np.ndarray, distill: bool):
        self.task, self.weights, self.distill = task, weights, distill
        self.name = getattr(task, "name", "metric")

    def loss(self, outs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        teacher = F.softmax(outs[0].detach(), -1)
        total = 0.0
        for i, (w, out) in enumerate(zip(self.weights, outs)):
            term = self.task.loss(out, targets)
            if self.distill and i > 0:
                term = 0.5 * term + 0.5 * F.kl_div(F.log_softmax(out, -1), teacher, reduction="batchmean")
            total = total + float(w) * term
        return total

    def predictions(self, outs: torch.Tensor) -> torch.Tensor:
        return self.task.predictions(outs[0])


def train_double_rounding(mp: MultiPrecision, train_batches: Iterable, val_batches: Optional[Iterable], task: Any,
                          cfg: DoubleRoundingConfig) -> dict[str, Any]:
    """Multi-precision quantization-aware training in the one loop (module docstring); returns the history and
    how many forward passes each precision had."""
    model, bits = mp.model, mp.bits
    probs = np.asarray(cfg.probabilities or [1.0] * len(bits), float)
    if len(probs) != len(bits) or (probs < 0).any() or probs.sum() <= 0:
        raise ValueError(f"probabilities {cfg.probabilities}: need {len(bits)} non-negative values")
    probs = probs / probs.sum()
    rng = random.Random(cfg.seed)
    drawn: dict[int, int] = {b: 0 for b in bits}
    joint = cfg.joint and not cfg.mixed

    def before(step: int) -> None:
        if joint:
            for b in bits:
                drawn[b] += 1
        elif cfg.mixed:
            choice = {n: rng.choices(bits, probs)[0] for n in mp.layers}
            mp.set_bit_width(choice)
            for b in choice.values():
                drawn[b] += 1
        else:
            b = rng.choices(bits, probs)[0]
            mp.set_bit_width(b)
            drawn[b] += 1

    params = qat_parameters(model)
    steps = max(1, round(cfg.epochs * len(train_batches)))
    tc = TrainConfig(steps=steps, lr=cfg.lr, optimizer="sgd", weight_decay=cfg.weight_decay, schedule="cosine",
                     progress=cfg.progress, desc="double rounding")
    model.train()
    net, loss = (_EveryPrecision(mp), _JointLoss(task, probs, cfg.distill)) if joint else (model, task)
    result = train(net, params, train_batches, loss, tc, hooks=StepHooks(before_step=before))
    model.eval()
    for p in params:
        p.requires_grad_(False)
    mp.set_bit_width(mp.top)
    out = {"history": result.history, "drawn": drawn}
    if val_batches is not None:
        out["val"] = {b: accuracy_at(mp, b, val_batches, task) for b in bits}
        mp.set_bit_width(mp.top)
    return out


def accuracy_at(mp: MultiPrecision, bits: int | dict, batches: Iterable, task: Any) -> float:
    mp.set_bit_width(bits)
    with torch.no_grad():
        return evaluate(mp.model, batches, task)
