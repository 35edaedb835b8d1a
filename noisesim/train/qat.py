"""Quantization-aware and noise-aware training: the network's weights train with its quantizers (and,
optionally, its analog noise) in the forward pass, in the one training loop.

A prepared, calibrated model trains on ``task_loss`` (+ an energy penalty when its log-energies train
too) with every weight, bias and other float parameter free, together with the learnable ranges of
its quantizers: PACT clips or LSQ steps for activations and LSQ steps for weights
(``SimConfig(act_learning=..., weight_learning=...)``, see ``noisesim.quant.functional``). A weight
quantizer without a learnable range re-takes its range from the weights at every training forward
(the scaled symmetric quantizer of the usual QAT recipes); the activation ranges found by
calibration stay unless they learn. Rounding passes gradients straight through (STE).

With the noise on (``noise=True``) the weights learn to tolerate it — noise-aware training, or
hardware-aware training in aihwkit's words (Rasch et al. 2023, "Hardware-aware training for
large-scale and diverse deep learning inference workloads using in-memory computing-based
accelerators"); ``energies=True`` trains the log-energies jointly under the constrained loss
toward ``target_emac``.

Checkpoint-best: after every epoch the model is scored on held-out *training* samples (never the
test set) and the best epoch's parameters are kept. Resumable: ``state_path`` holds the model,
optimiser and schedule after every epoch, written atomically; a rerun continues from it.

    from noisesim.train.qat import QATConfig, quantization_aware_training
    sim = noisesim.prepare(model, noisesim.SimConfig(weight_bits=4, act_bits=4, act_learning="pact"))
    noisesim.calibrate(sim, train_batches)
    result = quantization_aware_training(sim, train_batches, val_batches, task, QATConfig(epochs=3, lr=0.01))
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import torch
from torch import nn

from noisesim import distributed
from noisesim.context import noise_disabled
from noisesim.energy import average_energy, energy_penalty
from noisesim.io import save_checkpoint
from noisesim.nn.prepare import sim_layers
from noisesim.noise.base import NoiseModel
from noisesim.quant.bitwidth import BitWidth
from noisesim.settings import ConfigError, in_range, non_negative, positive, setting
from noisesim.train.loop import TrainConfig, TrainResult, evaluate, train


@dataclass(frozen=True)
class QATConfig:
    """epochs: passes over ``train_batches`` (fractions allowed); lr, optimizer, momentum, weight_decay,
    schedule: as in :class:`noisesim.train.loop.TrainConfig` (cosine by default); noise: keep the analog
    noise on while training; energies: also train the log-energies toward ``target_emac`` with penalty
    weight ``lambd`` (constrained loss); generated_labels: train on the teacher's predictions."""

    epochs: float = 1.0
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    noise: bool = False
    energies: bool = False
    target_emac: Optional[float] = None
    lambd: float = 1.0
    generated_labels: bool = False
    progress: bool = True

    @classmethod
    def from_settings(cls, s: QATSettings, noisy: bool, lambd: float, generated_labels: bool = False,
                      progress: bool = True) -> "QATConfig":
        """The training of a point's network: its noise on at ``s.qat_emac`` when it is ``noisy`` and that is set."""
        noisy = noisy and s.qat_emac is not None
        return cls(epochs=s.qat_epochs, lr=s.qat_lr, noise=noisy, energies=s.qat_energies and noisy,
                   target_emac=s.qat_emac if noisy else None, lambd=lambd, generated_labels=generated_labels,
                   progress=progress)

    def __post_init__(self):
        if not self.epochs > 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        if self.energies and (not self.noise or self.target_emac is None):
            raise ValueError("training energies with the weights needs noise=True and a target_emac")


T = "quantization-aware training"


@dataclass(frozen=True)
class QATSettings:
    """The command-line settings of quantization-aware training before a sweep's points (``main.py --qat``)."""

    qat: bool = setting(False, "train the network's weights with its quantizers on (and its noise, with "
                        "--qat_emac) before each point is allocated and evaluated; one training per quantization "
                        "setting, kept in the run folder's qat/", T)
    qat_epochs: float = setting(1.0, "epochs of quantization-aware training", T, unit="epochs", check=positive,
                                reaches="qat")
    qat_lr: float = setting(1e-3, "learning rate of quantization-aware training (SGD with Nesterov momentum, "
                            "cosine schedule)", T, check=in_range(0, 10, include_lo=False), reaches="qat")
    qat_emac: Optional[float] = setting(None, "noise-aware training: keep the point's noise model on at this "
                                        "energy while the weights train (default: noise off)", T,
                                        unit="photons/MAC", parse=float, check=positive, reaches="qat")
    qat_energies: bool = setting(False, "noise-aware training also trains per-layer log-energies toward "
                                 "--qat_emac (constrained loss, --lambd)", T, reaches="qat")
    qat_init: Optional[str] = setting(None, "start quantization-aware training from this trained network (a run "
                                      "folder's qat/<key>.pt, e.g. W4A4 to warm-start W4A2); tensors that do not "
                                      "fit are left out and listed", T, parse=str, reaches="qat")
    qat_val_samples: int = setting(2000, "training samples held out to keep the best epoch (0: keep the last)", T,
                                   unit="samples", check=non_negative, reaches="qat")

    def __post_init__(self):
        if self.qat_energies and self.qat_emac is None:
            raise ConfigError("--qat_energies trains energies toward --qat_emac: give it", "qat_energies")
        if self.qat_emac is not None and not self.qat:
            raise ConfigError("--qat_emac sets the noise of quantization-aware training: add --qat", "qat_emac")


def qat_parameters(model: nn.Module, energies: bool = False) -> list[nn.Parameter]:
    """Every float parameter (weights, biases, norms, learnable quantizer ranges), plus the log-energies
    when ``energies``; never learnable bit-widths. Sets requires_grad accordingly."""
    excluded = set()
    for m in model.modules():
        if isinstance(m, BitWidth) or (isinstance(m, NoiseModel) and not energies):
            excluded |= {id(p) for p in m.parameters()}
    chosen = [p for p in model.parameters() if id(p) not in excluded]
    ids = {id(p) for p in chosen}
    for p in model.parameters():
        p.requires_grad_(id(p) in ids)
    return chosen


@torch.no_grad()
def refresh_weight_ranges(model: nn.Module) -> None:
    """Re-take each non-learnable weight quantizer's range from the layer's current weights."""
    for layer in sim_layers(model):
        q = layer.weight_quant
        if q is not None and q.enabled and not q.learnable:
            layer.calibrate_weight_quant(layer.weight)
        elif q is not None:
            q.touch()


@dataclass
class QATResult:
    """The training history, the epoch kept (best validation score, 1-based) and its score."""

    train: TrainResult
    steps_per_epoch: int
    best_epoch: Optional[int]
    best_score: Optional[float]
    resumed_from_step: int = 0


def quantization_aware_training(model: nn.Module, train_batches: Iterable, val_batches: Optional[Iterable],
                                task: Any, cfg: QATConfig, teacher: Optional[nn.Module] = None,
                                state_path: Optional[str | Path] = None, save: bool = True) -> QATResult:
    """Train ``model`` (prepared and calibrated) in place; returns the history and the epoch kept.

    ``val_batches``: held-out training samples scored after every epoch (None: keep the last epoch).
    ``state_path``: resume from this file, and (with ``save``; under torchrun process 0 only) save to it after
    every epoch. Each training step is one batch per process (see ``noisesim.distributed``)."""
    steps_per_epoch = max(1, len(train_batches) // distributed.world_size())
    steps = max(1, round(cfg.epochs * steps_per_epoch))
    params = qat_parameters(model, cfg.energies)
    tc = TrainConfig(steps=steps, lr=cfg.lr, optimizer=cfg.optimizer, momentum=cfg.momentum,
                     weight_decay=cfg.weight_decay, schedule=cfg.schedule, generated_labels=cfg.generated_labels,
                     eval_every=steps_per_epoch, progress=cfg.progress, desc="quantization-aware training")
    def energy_term():
        e = average_energy(model)
        return energy_penalty(e, cfg.target_emac, cfg.lambd, True), {"avg_emac": e.item()}

    def score() -> float:
        refresh_weight_ranges(model)
        with torch.no_grad():
            return evaluate(model, val_batches, task)

    def feasible() -> bool:
        return not cfg.energies or average_energy(model).item() <= cfg.target_emac * 1.01

    resume = _load_state(model, state_path)

    def save_state(state: dict[str, Any]) -> None:
        if state_path is not None and save:
            save_checkpoint(state_path, {**state, "model": model.state_dict()})

    model.train()
    with (contextlib.nullcontext() if cfg.noise else noise_disabled(model)), _eval_bitwidths(model):
        result = train(model, params, train_batches, task, tc, energy_term if cfg.energies else None,
                       teacher=teacher, score_fn=score if val_batches is not None else None, feasible=feasible,
                       save_state=save_state, resume=resume)
    model.eval()
    for p in params:
        p.requires_grad_(False)
    refresh_weight_ranges(model)
    best_epoch = None if result.best_step is None else -(-result.best_step // steps_per_epoch)
    return QATResult(result, steps_per_epoch, best_epoch, result.best_score,
                     resume["step"] if resume is not None else 0)


def _load_state(model: nn.Module, state_path: Optional[str | Path]) -> Optional[dict[str, Any]]:
    """The saved training state (its model state loaded into ``model``), or None to start afresh."""
    if state_path is None or not Path(state_path).is_file():
        return None
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state.pop("model"))
    except Exception as e:  # truncated, corrupt, or from another model
        raise ValueError(f"{state_path}: cannot resume quantization-aware training from it ({type(e).__name__}); "
                         "delete it to start over") from None
    for layer in sim_layers(model):
        if layer.weight_quant is not None:
            layer.weight_quant.touch()
    return state


@contextlib.contextmanager
def _eval_bitwidths(model: nn.Module) -> Iterator[None]:
    """Fixed bit-widths keep deterministic rounding while the rest of the model is in train mode."""
    widths = [m for m in model.modules() if isinstance(m, BitWidth)]
    modes = [m.training for m in widths]
    for m in widths:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(widths, modes):
            m.train(mode)
