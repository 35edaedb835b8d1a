"""What each layer's input quantization costs, for allocating activation bits under an average budget.

A layer whose input is quantized to b bits over a range R (the calibrated range; for per-token dynamic
ranges, the root mean square of the rows' ranges) has the step Delta(b) = R / (2^b - 1), and rounding
adds, to first approximation, uniform noise of variance Delta(b)^2 / 12 to every element of the
quantized input. To second order the loss grows by

    Omega_l(b) = 1/2 * t_l * Delta_l(b)^2 / 12 = a_l / (2^b - 1)^2,     a_l = t_l R_l^2 / 24,

where t_l = sum_i H_ii is the trace of the Hessian of the loss with respect to the layer's quantized
input, per sample (Dong et al., HAWQ-V2, 2020, for the same cost on weights). It is estimated from
training batches, either by the Fisher information, t_l ~ E_samples[sum_i (d loss / d x_i)^2] (one
backward pass per batch), or by Hutchinson's estimator through Hessian-vector products. A layer with
two quantized operands (an attention matmul) sums the two. The budget is the input-element weighted
average, sum_l n_l b_l <= N b_avg with n_l the layer's input elements per sample, as the trained
method's average (``noisesim.energy.average_act_bits``).
"""
from __future__ import annotations

import contextlib
import itertools
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import nn

from noisesim.allocate.sensitivity import Sensitivity, cautious_traces, hutchinson_estimate, model_loss
from noisesim.batches import split_batch
from noisesim.nn.base import SimLayer
from noisesim.nn.prepare import sim_layers
from noisesim.quant.fake_quant import FakeQuantize


def act_layers(model: nn.Module) -> dict[str, SimLayer]:
    """The instrumented layers whose inputs are quantized, by name."""
    return {m.name: m for m in sim_layers(model) if m.act_quant.enabled}


def act_sizes(model: nn.Module) -> dict[str, int]:
    """Input elements per sample of every layer with quantized inputs (the budget's weights)."""
    sizes = {n: m.in_elems for n, m in act_layers(model).items()}
    if not all(s > 0 for s in sizes.values()):
        raise ValueError("activation-bit budgets need every layer's input size: run a forward pass first")
    return sizes


def set_act_bits(model: nn.Module, bits: dict[str, float]) -> None:
    layers = act_layers(model)
    for name, b in bits.items():
        layers[name].set_bits(act=b)


def _quantizers(model: nn.Module) -> list[tuple[str, FakeQuantize]]:
    return [(m.name, q) for m in act_layers(model).values() for q in m.activation_quantizers() if q.enabled]


@contextlib.contextmanager
def _perturbed(quantizers: list[tuple[str, FakeQuantize]], deltas: list) -> Iterator[None]:
    """While inside, every quantizer's output gets a zero tensor that requires grad added; each forward appends
    (layer name, quantizer index, delta) to ``deltas``."""

    def hook(i):
        def add(module, inputs, out):
            delta = torch.zeros_like(out, requires_grad=True)
            deltas.append((quantizers[i][0], i, delta))
            return out + delta
        return add

    handles = [q.register_forward_hook(hook(i)) for i, (_, q) in enumerate(quantizers)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def input_traces(model: nn.Module, batches: Iterable, task: Any, max_batches: int = 8, estimator: str = "fisher",
                 teacher: Optional[nn.Module] = None, iters: int = 50, tol: float = 0.01,
                 seed: int = 0) -> Sensitivity:
    """a_l = sum over the layer's input quantizers of t_q R_q^2 / 24 (above), by ``estimator`` (fisher or
    hutchinson), noise as the model has it, in eval mode; the values are one-element tensors by layer name, and
    ``extra["trace"]`` holds t_l."""
    if estimator not in ("fisher", "hutchinson"):
        raise ValueError(f"estimator must be fisher or hutchinson, got {estimator!r}")
    quantizers = _quantizers(model)
    if not quantizers:
        raise ValueError("no layer quantizes its inputs: activation bits need --act_bits")
    traces = torch.zeros(len(quantizers), dtype=torch.float64)
    range_sq = torch.zeros(len(quantizers), dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    forward = backward = samples = used = 0
    for batch in itertools.islice(batches, max_batches):
        deltas: list = []
        with _perturbed(quantizers, deltas):
            loss = model_loss(model, batch, task, teacher)
        forward += 1
        ds = [d for _, _, d in deltas]
        targets = split_batch(batch)[1]
        size = len(targets) if targets is not None else 1
        if estimator == "fisher":  # per-sample gradients of the batch-mean loss are size x the batch gradient
            grads = torch.autograd.grad(loss, ds)
            backward += 1
            for (_, i, _), g in zip(deltas, grads):
                traces[i] += (g.double() * size).pow(2).sum().cpu()
            samples += size
        else:
            grads = torch.autograd.grad(loss, ds, create_graph=True)

            def hvp(vs):
                return torch.autograd.grad(sum((g * v).sum() for g, v in zip(grads, vs)), ds, retain_graph=True)

            means, n = hutchinson_estimate(hvp, ds, [torch.ones(()) for _ in ds],
                                           [lambda t: t.sum().reshape(1) for _ in ds], iters, tol, generator)
            backward += n + 1
            for (_, i, _), m in zip(deltas, means):  # of the batch-mean loss: the mean over samples
                traces[i] += float(m.sum())
            samples += 1
        used += 1
        for i, (_, q) in enumerate(quantizers):  # dynamic ranges follow the batch: average them
            range_sq[i] += float(q.full_range().detach().double().pow(2).mean())
    model.train(was_training)
    if used == 0:
        raise ValueError("sensitivity estimation got no batches")
    traces, range_sq = traces / samples, range_sq / used
    values: dict[str, torch.Tensor] = {}
    trace: dict[str, float] = {}
    for i, (name, _) in enumerate(quantizers):
        values[name] = values.get(name, torch.zeros(1, dtype=torch.float64)) + traces[i] * range_sq[i] / 24
        trace[name] = trace.get(name, 0.0) + float(traces[i])
    return Sensitivity({n: v.float() for n, v in values.items()}, f"input {estimator}", forward, backward,
                       extra={"trace": trace})


def act_bit_costs(a: dict[str, float], candidates: Sequence[int]) -> dict[str, list[float]]:
    """Omega_l(b) = a_l / (2^b - 1)^2 for every layer and candidate b."""
    return {n: [v / (2.0 ** b - 1) ** 2 for b in candidates] for n, v in a.items()}


def act_bits_program(model: nn.Module, batches: Iterable, task: Any, b_avg: float, candidates: Sequence[int],
                     estimator: str = "fisher", max_batches: int = 8, teacher: Optional[nn.Module] = None,
                     iters: int = 50, tol: float = 0.01) -> tuple[dict[str, int], Sensitivity, list[str]]:
    """Activation bits per layer minimising sum_l Omega_l(b_l) over ``candidates`` within the input-element
    weighted budget ``b_avg`` (the exact integer program of ``noisesim.allocate.integer_program.choose``).
    A layer whose estimate is not positive is costed as the most sensitive per input element
    (``cautious_traces``). Returns (name -> bits, the sensitivities, the layers whose estimate was replaced)."""
    from noisesim.allocate.integer_program import choose  # SciPy's MILP; integer_program imports this module

    sens = input_traces(model, batches, task, max_batches, estimator, teacher, iters, tol)
    sizes = act_sizes(model)
    a, replaced = cautious_traces(sens, sizes)
    names = list(a)
    costs = act_bit_costs(a, candidates)
    costs = np.array([costs[n] for n in names])
    n = np.array([sizes[k] for k in names], float)
    picks = choose(costs, n[:, None] * np.array(candidates, float)[None, :], b_avg * n.sum())
    return {k: int(candidates[i]) for k, i in zip(names, picks)}, sens, replaced
