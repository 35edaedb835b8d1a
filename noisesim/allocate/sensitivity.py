"""How much each layer's noise costs: per-channel sensitivities c such that the loss grows by

    Delta L  ~=  1/2 * sum_l sum_c  c_{l,c} / E_{l,c}

when layer l's channel c runs at E_{l,c} photons/MAC. Every noise model's variance scales as 1/E,
so with s_i^2 the variance of the noise on element i at E = 1 (``NoiseModel.unit_variance``) and
H the Hessian of the loss with respect to the perturbed tensor (a layer's output, or its weights
for weight noise), a second-order expansion gives c = sum_i H_ii s_i^2 over the channel's
elements. Three estimators:

* ``fisher_sensitivity``: H_ii ~ E[(d loss_b / d t_i)^2], the Fisher information — one backward
  pass per batch for all layers at once (per sample for weight noise, which every sample shares);
* ``hessian_sensitivity``: Hutchinson's estimator sum_i H_ii s_i^2 = E_v[(v*s)^T H (v*s)] with
  Rademacher v and Hessian-vector products through autograd (Hutchinson 1989; HAWQ-V2, Dong et
  al. 2020), iterated until the estimate changes by less than ``tol``;
* ``finite_difference_sensitivity``: noise in one layer alone at energy E, c_l = 2 E Delta L_l —
  the direct check of the other two.

``weight_hessian_trace`` gives HAWQ's tr(H_l) of the loss with respect to each layer's weights,
for bit-width allocation. All run the model in eval mode on training batches.
"""
from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional

import torch
from torch import nn

from noisesim.batches import call_model, inputs_and_targets, split_batch
from noisesim.context import noise_disabled
from noisesim.nn.base import SimLayer
from noisesim.nn.prepare import sim_layers
from noisesim.noise.base import NoiseModel
from noisesim.settings import at_least_one, non_negative, setting

A = "allocation"


@dataclass(frozen=True)
class SensitivitySettings:
    """The settings of a method that measures sensitivities on training batches."""

    sensitivity_batches: int = setting(8, "training batches the sensitivities of closed_form, hessian and greedy "
                                       "are measured on", A, unit="batches", check=at_least_one)


@dataclass(frozen=True)
class HutchinsonSettings(SensitivitySettings):
    """... and estimates Hessian traces with Hutchinson's estimator."""

    hutchinson_iters: int = setting(50, "at most this many Rademacher vectors per batch (Hutchinson)", A,
                                    check=at_least_one)
    hutchinson_tol: float = setting(0.01, "stop Hutchinson once the estimate changes by less than this (relative)",
                                    A, check=non_negative)


@dataclass
class Sensitivity:
    """c per output channel of every noisy layer (name -> tensor of its channels), and its cost in passes."""

    values: dict[str, torch.Tensor]
    method: str
    forward: int = 0
    backward: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def per_layer(self) -> dict[str, float]:
        return {n: float(v.sum()) for n, v in self.values.items()}


def _noisy_layers(model: nn.Module) -> list[SimLayer]:
    layers = [m for m in sim_layers(model) if m.noise is not None]
    if not layers:
        raise ValueError("no layer has a noise model: sensitivities to noise need --noise_type thermal, shot or weight")
    return layers


@contextlib.contextmanager
def _probing(layers: list[SimLayer], probe: Callable) -> Iterator[None]:
    for m in layers:
        m.noise.set_probe(probe)
    try:
        yield
    finally:
        for m in layers:
            m.noise.set_probe(None)


def model_loss(model: nn.Module, batch: Any, task: Any, teacher: Optional[nn.Module]) -> torch.Tensor:
    inputs, targets = inputs_and_targets(batch, task, teacher)
    return task.loss(call_model(model, inputs), targets)


def _single_samples(batch: Any) -> Iterator[Any]:
    """The samples of a batch one by one, each as a batch of one."""
    inputs, targets = split_batch(batch)
    n = len(targets) if targets is not None else len(next(iter(inputs.values())) if isinstance(inputs, dict) else
                                                      inputs[0] if isinstance(inputs, (tuple, list)) else inputs)

    def pick(x, i):
        if isinstance(x, dict):
            return {k: v[i:i + 1] for k, v in x.items()}
        if isinstance(x, (tuple, list)):
            return type(x)(v[i:i + 1] for v in x)
        return x[i:i + 1]

    for i in range(n):
        yield (pick(inputs, i), None if targets is None else targets[i:i + 1])


def fisher_sensitivity(model: nn.Module, batches: Iterable, task: Any, max_batches: int = 8,
                       teacher: Optional[nn.Module] = None, max_samples: int = 64) -> Sensitivity:
    """c_{l,c} = sum over the channel's elements of E_samples[(d loss / d t_i)^2 * s_i^2].

    Output noise: per-sample gradients of a mean loss are B times the batch gradient. Weight noise
    is shared by a batch, so its gradients are taken sample by sample (``max_samples`` of them).
    ``extra["gradient_power"]``: per layer, sum_i E_samples[(d loss / d t_i)^2] over every element of the
    perturbed tensor (every tile's partial sum), what a noise of unit variance on each would cost."""
    layers = _noisy_layers(model)
    weight_noise = any(m.noise.acts_on == "weight" for m in layers)
    sums = {m.name: torch.zeros(m.noise.channels, dtype=torch.float64) for m in layers}
    power = {m.name: 0.0 for m in layers}
    names = {id(m.noise): m.name for m in layers}
    state = {"scale": 1.0}

    def probe(noise: NoiseModel, t: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        delta = torch.zeros_like(t, requires_grad=True)
        name = names[id(noise)]

        def accumulate(g):
            with torch.no_grad():
                g2 = (g * state["scale"]).pow(2)
                sums[name] += noise.per_channel_sum(g2 * var).double().cpu()
                power[name] += float(g2.sum())
            return g

        delta.register_hook(accumulate)
        return t + delta

    was_training = model.training
    model.eval()
    samples = forward = 0
    batches = itertools.islice(batches, max_batches)
    units = itertools.islice(itertools.chain.from_iterable(_single_samples(b) for b in batches), max_samples) \
        if weight_noise else batches
    with _probing(layers, probe):
        for batch in units:
            size = len(split_batch(batch)[1]) if split_batch(batch)[1] is not None else 1
            state["scale"] = float(size)  # per-sample gradients of the batch-mean loss
            model_loss(model, batch, task, teacher).backward()
            samples += size
            forward += 1
    model.train(was_training)
    if samples == 0:
        raise ValueError("sensitivity estimation got no batches")
    return Sensitivity({n: (s / samples).float() for n, s in sums.items()}, "fisher", forward, forward,
                       {"gradient_power": {n: p / samples for n, p in power.items()}})


def hutchinson_estimate(hvp: Callable[[list[torch.Tensor]], list[torch.Tensor]], shapes: list[torch.Tensor],
                scales: list[torch.Tensor], reduce: list[Callable], iters: int, tol: float,
                generator: torch.Generator) -> tuple[list[torch.Tensor], int]:
    """Mean over Rademacher v of reduce_j((v_j s_j) * (H (v s))_j) until every total changes by < tol."""
    means: Optional[list[torch.Tensor]] = None
    n = 0
    for n in range(1, iters + 1):
        vs = [torch.randint(0, 2, t.shape, generator=generator, dtype=torch.int8).to(t.dtype).mul_(2).sub_(1)
              .to(t.device) * s for t, s in zip(shapes, scales)]
        est = [r(v * hv).detach().double().cpu() for v, hv, r in zip(vs, hvp(vs), reduce)]
        if means is None:
            means = est
            continue
        old = [m.sum().item() for m in means]
        means = [m + (e - m) / n for m, e in zip(means, est)]
        if n >= 3 and all(abs(m.sum().item() - o) <= tol * abs(m.sum().item()) for m, o in zip(means, old)):
            break
    return means, n


def hessian_sensitivity(model: nn.Module, batches: Iterable, task: Any, max_batches: int = 4,
                        teacher: Optional[nn.Module] = None, iters: int = 50, tol: float = 0.01,
                        seed: int = 0) -> Sensitivity:
    """c_{l,c} = sum_i H_ii s_i^2 by Hutchinson's estimator on every noisy layer's perturbed tensor
    (one block-diagonal estimate per layer; cross-layer terms vanish in expectation)."""
    layers = _noisy_layers(model)
    generator = torch.Generator().manual_seed(seed)
    totals = {m.name: torch.zeros(m.noise.channels, dtype=torch.float64) for m in layers}
    was_training = model.training
    model.eval()
    forward = backward = used = 0
    for batch in itertools.islice(batches, max_batches):
        deltas: list[tuple[NoiseModel, torch.Tensor, torch.Tensor]] = []

        def probe(noise, t, var, deltas=deltas):
            delta = torch.zeros_like(t, requires_grad=True)
            deltas.append((noise, delta, var.expand_as(t).sqrt()))
            return t + delta

        with _probing(layers, probe):
            loss = model_loss(model, batch, task, teacher)
        ds = [d for _, d, _ in deltas]
        grads = torch.autograd.grad(loss, ds, create_graph=True)
        forward += 1
        backward += 1

        def hvp(vs):
            return torch.autograd.grad(sum((g * v).sum() for g, v in zip(grads, vs)), ds, retain_graph=True)

        means, n = hutchinson_estimate(hvp, ds, [s for _, _, s in deltas], [n_.per_channel_sum for n_, _, _ in deltas],
                               iters, tol, generator)
        backward += n
        for (noise, _, _), m in zip(deltas, means):
            totals[next(l.name for l in layers if l.noise is noise)] += m
        used += 1
    model.train(was_training)
    if used == 0:
        raise ValueError("sensitivity estimation got no batches")
    return Sensitivity({k: (v / used).float() for k, v in totals.items()}, "hutchinson", forward, backward)


@torch.no_grad()
def _mean_loss(model: nn.Module, batches: list, task: Any, teacher: Optional[nn.Module]) -> float:
    return sum(model_loss(model, b, task, teacher).item() for b in batches) / len(batches)


def finite_difference_sensitivity(model: nn.Module, batches: Iterable, task: Any, energy: float = 1.0,
                                  max_batches: int = 8, draws: int = 4, teacher: Optional[nn.Module] = None,
                                  seed: int = 0) -> Sensitivity:
    """c_l = 2 E Delta L_l, with Delta L_l the loss increase from noise in layer l alone at energy E.

    Antithetic draws: every Gaussian draw z is used as +z and -z and the two losses averaged, which
    cancels the first-order term g.z (zero-mean, but much larger than the second-order effect) exactly."""
    layers = _noisy_layers(model)
    held = list(itertools.islice(batches, max_batches))
    was_training = model.training
    model.eval()
    with noise_disabled(model):
        clean = _mean_loss(model, held, task, teacher)
    values, forward = {}, len(held)
    for m in layers:
        state = {"calls": 0, "sign": 1.0, "draw": 0}

        def probe(noise, t, var, state=state):
            g = torch.Generator(t.device).manual_seed(seed + 100_003 * state["draw"] + state["calls"])
            state["calls"] += 1
            z = torch.randn(t.shape, generator=g, device=t.device, dtype=t.dtype)
            return t + state["sign"] * z * torch.sqrt(var / energy)

        total = 0.0
        with noise_disabled(model), _probing([m], probe):
            m.noise.enable()
            for d in range(draws):
                for sign in (1.0, -1.0):
                    state.update(calls=0, sign=sign, draw=d)
                    total += _mean_loss(model, held, task, teacher) / (2 * draws)
        forward += 2 * draws * len(held)
        values[m.name] = torch.tensor([2 * energy * (total - clean)])
    model.train(was_training)
    return Sensitivity(values, "finite_difference", forward, 0)


def cautious_traces(trace: Sensitivity, sizes: dict[str, int]) -> tuple[dict[str, float], list[str]]:
    """Per-layer Hessian traces safe to allocate with; ``sizes`` is what each trace is spread over
    (weights n_l for bits, MACs M_l for energies).

    HAWQ's cost tr(H_l)/n_l * ||Q_b(W_l) - W_l||^2, like the energy cost c_l / (2 E_l), assumes a positive trace.
    A Hutchinson estimate that is not positive (negative curvature, or a small trace lost in the estimator's own
    noise) would make that layer's perturbation free, and an integer program would give it the fewest bits or the
    least energy. Such a layer is instead treated as being as sensitive per unit of size as the most sensitive
    measured layer: tr_l = n_l * max_j (tr_j / n_j).
    Returns (name -> trace for every layer in ``sizes``, the names whose estimate was replaced)."""
    est = {n: float(trace.values[n].sum()) for n in sizes if n in trace.values}
    worst = max((t / sizes[n] for n, t in est.items() if t > 0), default=None)
    if worst is None:
        raise ValueError("every layer's Hessian trace estimate is non-positive; use more --sensitivity_batches "
                         "or --hutchinson_iters")
    replaced = [n for n in sizes if est.get(n, 0.0) <= 0]
    return {n: worst * sizes[n] if n in replaced else est[n] for n in sizes}, replaced


def weight_hessian_trace(model: nn.Module, batches: Iterable, task: Any, max_batches: int = 4,
                         teacher: Optional[nn.Module] = None, iters: int = 50, tol: float = 0.01,
                         seed: int = 0) -> Sensitivity:
    """tr(H_l) of the loss with respect to each layer's weights (HAWQ-V2), noise off, by Hutchinson's estimator."""
    layers = [m for m in sim_layers(model) if getattr(m, "weight", None) is not None]
    generator = torch.Generator().manual_seed(seed)
    weights = [m.weight for m in layers]
    flags = [w.requires_grad for w in weights]
    totals = [torch.zeros(1, dtype=torch.float64) for _ in layers]
    was_training = model.training
    model.eval()
    forward = backward = used = 0
    try:
        for w in weights:
            w.requires_grad_(True)
        with noise_disabled(model):
            for batch in itertools.islice(batches, max_batches):
                grads = torch.autograd.grad(model_loss(model, batch, task, teacher), weights, create_graph=True)
                forward += 1

                def hvp(vs):
                    return torch.autograd.grad(sum((g * v).sum() for g, v in zip(grads, vs)), weights,
                                               retain_graph=True)

                means, n = hutchinson_estimate(hvp, weights, [torch.ones(()) for _ in weights],
                                       [lambda t: t.sum().reshape(1) for _ in weights], iters, tol, generator)
                backward += n + 1
                totals = [t + m for t, m in zip(totals, means)]
                used += 1
    finally:
        for w, f in zip(weights, flags):
            w.requires_grad_(f)
        model.train(was_training)
    if used == 0:
        raise ValueError("sensitivity estimation got no batches")
    return Sensitivity({m.name: (t / used).float() for m, t in zip(layers, totals)}, "weight_hessian_trace",
                       forward, backward)
