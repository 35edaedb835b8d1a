"""The one training and evaluation loop, shared by every task and every trained quantity.

``train`` optimises exactly the parameters it is given (log-energies, log2 bit-widths,
quantizer ranges, or a float network's weights when it is pre-trained) on
``task.loss + penalty()``; the caller decides the model's mode (energy training keeps
the network in eval mode, with frozen weights and BN statistics).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from noisesim import distributed
from noisesim.batches import call_model, inputs_and_targets
from noisesim.noise.base import NoiseModel

Penalty = Callable[[], tuple[torch.Tensor, dict[str, float]]]


OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and schedule of one training run.

    steps: optimiser steps (batches); lr: learning rate; optimizer: ``adam`` or ``sgd``
    (with ``momentum``); schedule: ``constant`` or ``cosine`` (to zero at the last step);
    generated_labels: train on the teacher's own top-1 predictions instead of labels;
    eval_every: evaluate (and checkpoint) every this many steps, 0 = only at the end.
    """

    steps: int
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    generated_labels: bool = False
    eval_every: int = 0
    progress: bool = True
    desc: str = "train"

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")


@dataclass(frozen=True)
class StepHooks:
    """Calls into the loop: ``before_step(step)`` before each forward (set bit-widths, sample a precision),
    ``after_backward(step)`` between the backward pass and the optimiser step (read or rescale gradients)."""

    before_step: Optional[Callable[[int], None]] = None
    after_backward: Optional[Callable[[int], None]] = None


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_step: Optional[int] = None
    best_score: Optional[float] = None
    converged: bool = False


def make_optimizer(params: list[torch.Tensor], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           nesterov=cfg.momentum > 0)


def _cycle(batches: Iterable) -> Iterable:
    """Repeat an iterable that can be iterated many times (a loader), pass after pass; under torchrun, only
    this process's share of the stream (every world_size-th batch)."""
    stream = itertools.chain.from_iterable(itertools.repeat(batches))
    return itertools.islice(stream, distributed.rank(), None, distributed.world_size())


def reseed_noise(model: nn.Module, stream: int) -> None:
    """Every noise model of ``model`` draws from stream ``stream`` of its own seed from now on."""
    for m in model.modules():
        if isinstance(m, NoiseModel):
            m.sampler.reseed(stream)


def train(model: nn.Module, params: list[torch.Tensor], batches: Iterable, task: Any,
          cfg: TrainConfig, penalty: Optional[Penalty] = None, teacher: Optional[nn.Module] = None,
          score_fn: Optional[Callable[[], float]] = None,
          feasible: Optional[Callable[[], bool]] = None,
          converged: Optional[Callable[[list[dict[str, float]]], bool]] = None,
          save_state: Optional[Callable[[dict[str, Any]], None]] = None,
          resume: Optional[dict[str, Any]] = None, hooks: Optional[StepHooks] = None,
          optimizer: Optional[torch.optim.Optimizer] = None, scheduler: Any = None) -> TrainResult:
    """Minimise ``task.loss(model(x), y) + penalty()`` over ``params`` for at most ``cfg.steps`` batches.

    ``converged(history)`` ends training early once it holds (``result.converged``). With
    ``score_fn`` and ``cfg.eval_every``, the parameters of the best-scoring evaluation at which
    ``feasible()`` holds (e.g. the energy constraint is met) are restored at the end; the last
    step is always evaluated. ``save_state(state)`` is called after every evaluation with what
    ``resume`` needs to continue from there (step, optimiser and schedule state, history, best
    parameters so far); the caller saves and restores ``params`` themselves. A resumed run sees
    the batches in a fresh order. ``hooks``: see :class:`StepHooks`. ``optimizer`` / ``scheduler``: the
    caller's own (over ``params``; the scheduler is stepped after every optimiser step) instead of the ones
    ``cfg`` describes.
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: no parameter requires grad")
    if cfg.generated_labels and teacher is None:
        raise ValueError("generated_labels needs a teacher model")
    opt = optimizer if optimizer is not None else make_optimizer(params, cfg)
    sched = scheduler if optimizer is not None else (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps) if cfg.schedule == "cosine" else None)
    hooks = hooks or StepHooks()
    result, best, start = TrainResult(), None, 0
    if resume is not None:
        opt.load_state_dict(resume["optimizer"])
        if sched is not None and resume.get("scheduler") is not None:
            sched.load_state_dict(resume["scheduler"])
        start, result.history, best = resume["step"], list(resume["history"]), resume.get("best")
    bar = tqdm(total=cfg.steps, initial=start, desc=cfg.desc, disable=None if cfg.progress and distributed.is_main()
               else True, leave=False)  # None: off when not a terminal
    if distributed.active():
        reseed_noise(model, -1 - distributed.rank())  # each process its own noise while training
    if start >= cfg.steps:
        bar.close()
        return _restore_best(result, best, params)
    for step, batch in enumerate(_cycle(batches), start=start + 1):
        if hooks.before_step is not None:
            hooks.before_step(step)
        inputs, targets = inputs_and_targets(batch, task, teacher if cfg.generated_labels else None)
        if targets is None:
            raise ValueError("batches carry no targets; use generated labels")
        out = call_model(model, inputs)
        loss = task.loss(out, targets)
        stats = {"loss": distributed.mean(loss.item())}
        if penalty is not None:
            pen, pen_stats = penalty()
            loss = loss + pen
            stats.update(pen_stats, penalty=pen.item())
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(params)
        if hooks.after_backward is not None:
            hooks.after_backward(step)
        opt.step()
        if sched is not None:
            sched.step()
        if hasattr(task, "predictions"):
            stats["batch_acc"] = distributed.mean((task.predictions(out.detach()) == targets).float().mean().item())
        stats["step"] = step
        result.converged = converged is not None and converged(result.history + [stats])
        last = step == cfg.steps or result.converged
        if score_fn is not None and (last or (cfg.eval_every and step % cfg.eval_every == 0)):
            stats["score"] = score_fn()
            ok = feasible() if feasible is not None else True
            if ok and (best is None or stats["score"] >= best[1]):
                best = (step, stats["score"], [p.detach().clone() for p in params])
            if save_state is not None:
                save_state({"step": step, "optimizer": opt.state_dict(),
                            "scheduler": sched.state_dict() if sched is not None else None,
                            "history": result.history + [stats], "best": best})
        result.history.append(stats)
        bar.set_postfix({k: f"{v:.4g}" for k, v in stats.items() if k != "step"}, refresh=False)
        bar.update()
        if last:
            break
    bar.close()
    return _restore_best(result, best, params)


def _restore_best(result: TrainResult, best: Optional[tuple], params: list[torch.Tensor]) -> TrainResult:
    """Put the best evaluated parameters back (if any evaluation was kept)."""
    if best is not None:
        result.best_step, result.best_score = best[0], best[1]
        with torch.no_grad():
            for p, saved in zip(params, best[2]):
                p.copy_(saved)
    return result


@torch.no_grad()
def _outputs(model: nn.Module, batches: Iterable, task: Any, max_batches: Optional[int], teacher: Optional[nn.Module],
             progress: bool, desc: str, batch_seed: Optional[int] = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Outputs and targets of every batch, in order. ``batch_seed``: batch i draws noise from stream
    (batch_seed, i) of every noise model, so the result does not depend on which process evaluates it (always
    so under torchrun, where each process evaluates its share and the outputs are gathered)."""
    was_training = model.training
    model.eval()
    if batch_seed is None and distributed.active():
        batch_seed = 0
    pairs = []
    total = len(batches) if hasattr(batches, "__len__") else None
    if max_batches is not None:
        total = min(total, max_batches) if total is not None else max_batches
    for i, batch in distributed.shard(tqdm(itertools.islice(batches, max_batches), total=total, desc=desc,
                                           disable=None if progress and distributed.is_main() else True,
                                           leave=False)):
        if batch_seed is not None:
            reseed_noise(model, batch_seed * (1 << 24) + i)
        inputs, y = inputs_and_targets(batch, task, teacher)
        out = call_model(model, inputs)
        pairs.append((i, (out.float(), y)))
    model.train(was_training)
    if distributed.active():
        pairs = [(i, (o.cpu(), y.cpu())) for i, (o, y) in pairs]
    gathered = distributed.gather_indexed(pairs)
    if not gathered:
        raise ValueError("no batches to evaluate")
    return [o for o, _ in gathered], [y for _, y in gathered]


def evaluate(model: nn.Module, batches: Iterable, task: Any, max_batches: Optional[int] = None,
             teacher: Optional[nn.Module] = None, progress: bool = False, desc: str = "eval") -> float:
    """Task metric of ``model`` in eval mode over ``batches`` (the first ``max_batches``).

    With ``teacher``, targets are the teacher's predictions (agreement with the float model).
    The model's previous train/eval mode is restored afterwards.
    """
    return task.metric(*_outputs(model, batches, task, max_batches, teacher, progress, desc))


def evaluate_outcomes(model: nn.Module, batches: Iterable, task: Any, progress: bool = False,
                      desc: str = "eval", batch_seed: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-example outcomes (see the task) and targets of one pass over ``batches`` (``batch_seed``: noise keyed
    by batch, see ``_outputs``)."""
    outputs, targets = _outputs(model, batches, task, None, None, progress, desc, batch_seed)
    return task.outcomes(outputs, targets), torch.cat([t.reshape(-1) for t in targets]).float().cpu().numpy()
