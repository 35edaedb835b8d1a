"""Sweeps: expand the CLI lists into points, run each point, write one row per point.

A point is one allocation (uniform, trained per layer, trained per channel) of one noise
model at one average energy and one quantization setting. Running it: prepare the float
model -> calibrate -> (train the allocation under the constrained loss) -> evaluate with
Monte-Carlo repeats -> per-layer report. Trained points are also compared with a uniform
allocation of the same average energy.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any, Optional

import pandas as pd
import torch
from torch import nn

import noisesim
from noisesim.analysis.montecarlo import mc_evaluate
from noisesim.analysis.runs import RunFolder
from noisesim.config import SimConfig
from noisesim.data.registry import build_data
from noisesim.data.tensors import DeviceBatches
from noisesim.models.zoo import MODELS, build_model
from noisesim.noise.base import NoiseModel
from noisesim.quant.bitwidth import BitWidth
from noisesim.train.allocation import (AllocationPenalty, AllocationTargets, project_bits, project_energy,
                                       set_uniform_energy, trainable_parameters)
from noisesim.train.loop import TrainConfig, evaluate, train

# run-wide settings recorded in every row (the quantization-card confounders among them)
FIXED_FIELDS = ("model", "dataset", "weight_symmetric", "act_symmetric", "weight_per_channel", "weight_observer",
                "act_observer", "calibration_batches", "fold_bn", "quantize_residual", "ignore", "first_last_bits",
                "train_subset", "train_batches", "train_batch_size", "generated_labels", "constrained_loss",
                "optimizer", "quantize_energy", "mc_repeats", "eval_batches", "val_batch_size", "photon_energy",
                "checkpoint", "train_bitwidth", "train_qminmax", "round_bitwidth", "discrete_bitwidth",
                "stochastic_bitwidth", "per_channel_bitwidth", "weight_bits_only", "max_act",
                "override_with_noise_bits", "checkpoint_path")


@dataclass(frozen=True)
class Point:
    noise_type: str
    allocation: str
    target_emac: Optional[float]
    weight_bits: Optional[int]
    act_bits: Optional[int]
    target_weight_bits: Optional[float]
    target_act_bits: Optional[float]
    lambd: float
    lr: float
    percentile: float
    seed: int

    def trains(self, args: argparse.Namespace) -> bool:
        return self.allocation != "uniform" or args.train_bitwidth or args.train_qminmax

    def effective(self, args: argparse.Namespace) -> "Point":
        """Blank the fields that cannot change this point's result (so duplicates collapse)."""
        p = self
        if p.noise_type == "none":
            p = dataclasses.replace(p, target_emac=None, allocation="uniform")
        if not p.trains(args):
            p = dataclasses.replace(p, lambd=0.0, lr=0.0)
        if not args.train_bitwidth:
            p = dataclasses.replace(p, target_weight_bits=None, target_act_bits=None)
        if "percentile" not in (args.weight_observer, args.act_observer):
            p = dataclasses.replace(p, percentile=0.0)
        return p

    def point_id(self, fixed: dict[str, Any]) -> str:
        blob = json.dumps({**dataclasses.asdict(self), **fixed}, sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def sweep_points(args: argparse.Namespace) -> list[Point]:
    """Cartesian product of the list-valued flags, duplicates removed, order kept."""
    energies = args.target_emac or args.e_mac
    grid = itertools.product(args.noise_type, args.allocation, energies, args.weight_bits, args.act_bits,
                             args.target_weight_bits or [None], args.target_act_bits or [None], args.lambd,
                             args.lr, args.percentile, args.seed)
    seen, points = set(), []
    for values in grid:
        p = Point(*values).effective(args)
        if p not in seen:
            seen.add(p)
            points.append(p)
    return points


def sim_config(a: argparse.Namespace, p: Point) -> SimConfig:
    """The SimConfig of one point (raises ConfigError on an impossible combination)."""
    overrides = {}
    if a.first_last_bits is not None:
        overrides = {k: {"weight_bits": a.first_last_bits, "act_bits": a.first_last_bits} for k in ("first", "last")}
    return SimConfig(
        weight_bits=p.weight_bits, act_bits=p.act_bits, weight_symmetric=a.weight_symmetric,
        act_symmetric=a.act_symmetric, weight_per_channel=a.weight_per_channel,
        weight_observer=a.weight_observer, act_observer=a.act_observer, percentile=p.percentile or 99.99,
        noise_type=p.noise_type, e_mac=p.target_emac or 1.0, noise_per_channel=p.allocation == "channel",
        quantize_energy=a.quantize_energy, train_noise=p.allocation != "uniform",
        train_bitwidth=a.train_bitwidth, weight_bits_only=a.weight_bits_only, train_qminmax=a.train_qminmax,
        round_bitwidth=a.round_bitwidth, discrete_bitwidth=a.discrete_bitwidth,
        stochastic_bitwidth=a.stochastic_bitwidth, per_channel_bitwidth=a.per_channel_bitwidth,
        fold_bn=a.fold_bn, quantize_residual=a.quantize_residual, record_snr=a.record_snr,
        seed=p.seed,  # --override_with_noise_bits is an extra evaluation (run_point), not a config
        photon_energy_aj=a.photon_energy, ignore=tuple(a.ignore), overrides=overrides)


def fixed_fields(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in FIXED_FIELDS}


class Experiment:
    """The float model, its data, and how to turn a Point into a result row."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        spec = MODELS[args.model]
        val_subset = args.eval_batches * args.val_batch_size if args.eval_batches else None
        self.data = build_data(args.dataset, args.data_path, args.train_batch_size, args.val_batch_size,
                               args.train_subset, args.seed[0], val_subset, spec.input_size,
                               normalization=spec.normalization, tokenizer_name=args.checkpoint_path)
        self.model = build_model(args.model, args.dataset, self.data.num_classes, self.data.in_channels,
                                 args.checkpoint_path).to(self.device)
        self.baseline = getattr(self.model, "baseline", "")
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.train_batches = DeviceBatches(self.data.train, self.device)
        self.val_batches = DeviceBatches(self.data.val, self.device)
        self.task = self.data.task
        self.fixed = fixed_fields(args)
        self._float_acc: Optional[float] = None

    # -- evaluation ---------------------------------------------------------------
    def float_accuracy(self) -> float:
        if self._float_acc is None:
            self._float_acc = evaluate(self.model, self.val_batches, self.task, progress=self.args.progress,
                                       desc="float model")
        return self._float_acc

    def _evaluate(self, sim: nn.Module) -> tuple[float, float]:
        mean, ci, _ = mc_evaluate(sim, self.val_batches, self.task, self.args.mc_repeats,
                                  progress=self.args.progress)
        return mean, ci

    # -- one point ----------------------------------------------------------------
    def build(self, p: Point) -> nn.Module:
        torch.manual_seed(p.seed)
        sim = noisesim.prepare(self.model, sim_config(self.args, p))
        noisesim.calibrate(sim, self.train_batches, max_batches=self.args.calibration_batches)
        return sim

    def _train(self, sim: nn.Module, p: Point, writer=None) -> dict[str, Any]:
        a = self.args
        energy = p.allocation != "uniform"
        params = trainable_parameters(sim, noise=energy, bitwidth=a.train_bitwidth, qminmax=a.train_qminmax)
        targets = AllocationTargets(p.target_emac if energy else None, p.target_weight_bits, p.target_act_bits,
                                    p.lambd, a.constrained_loss, a.max_act)
        penalty = AllocationPenalty(sim, targets, energy=energy, bits=a.train_bitwidth)
        cfg = TrainConfig(steps=a.train_batches, lr=p.lr, optimizer=a.optimizer,
                          generated_labels=a.generated_labels, eval_every=a.checkpoint_every if a.checkpoint else 0,
                          progress=a.progress, desc=f"train {p.allocation} {p.noise_type} E={p.target_emac}")
        score_fn = None
        if a.checkpoint:  # select on training batches, never on the test set
            ckpt = list(itertools.islice(iter(self.train_batches), 4))
            score_fn = lambda: evaluate(sim, ckpt, self.task)  # noqa: E731
        sim.eval()
        for m in sim.modules():
            if isinstance(m, BitWidth):
                m.train()  # stochastic rounding while training
        result = train(sim, params, self.train_batches, self.task, cfg, penalty, teacher=self.model,
                       score_fn=score_fn, feasible=penalty.feasible if a.constrained_loss else None)
        sim.eval()
        for prm in params:
            prm.requires_grad_(False)
        projected = energy and p.target_emac is not None and a.constrained_loss and \
            project_energy(sim, p.target_emac)
        projected = (a.train_bitwidth and project_bits(sim, penalty)) or projected
        if writer is not None:
            for h in result.history:
                for k, v in h.items():
                    if k != "step":
                        writer.add_scalar(f"train/{k}", v, h["step"])
        return {"best_step": result.best_step, "projected": bool(projected),
                "final_loss": result.history[-1]["loss"] if result.history else None}

    def run_point(self, p: Point, folder: RunFolder, writer=None, compare_uniform: bool = True) -> dict[str, Any]:
        """Run one point, append its row; ``compare_uniform`` also evaluates a uniform allocation of the
        trained point's average energy."""
        start = time.time()
        pid = p.point_id(self.fixed)
        sim = self.build(p)
        info = self._train(sim, p, writer) if p.trains(self.args) else {}
        for n in sim.modules():
            if isinstance(n, NoiseModel):
                n.reset_snr()  # SNR of the evaluation only
        acc, ci = self._evaluate(sim)
        report = noisesim.energy_report(sim, photon_energy_aj=self.args.photon_energy)
        channels = noisesim.channel_report(sim) if p.allocation == "channel" or self.args.record_snr else None
        row: dict[str, Any] = {"point_id": pid, **dataclasses.asdict(p), **self.fixed,
                               "accuracy": acc, "accuracy_ci95": ci, "float_accuracy": self.float_accuracy(),
                               "baseline": self.baseline}
        row.update(avg_emac=report.attrs["avg_energy"], avg_emac_aj=report.attrs["avg_energy_aj"],
                   avg_weight_bits=report.attrs["avg_weight_bits"], avg_act_bits=report.attrs["avg_act_bits"],
                   avg_noise_bits=report.attrs["avg_noise_bits"],
                   mean_snr_db=float(report["snr_db"].mean()) if report["snr_db"].notna().any() else None,
                   macs=report.attrs["macs"], **info)
        if self.args.override_with_noise_bits and p.noise_type != "none":
            with noisesim.noise_as_quantizer(sim):
                row["noise_bits_accuracy"], row["noise_bits_accuracy_ci95"] = self._evaluate(sim)
        if compare_uniform and p.allocation != "uniform" and p.noise_type != "none":
            uniform = copy.deepcopy(sim)
            set_uniform_energy(uniform, row["avg_emac"])
            row["uniform_accuracy_same_energy"], row["uniform_accuracy_same_energy_ci95"] = self._evaluate(uniform)
        row["seconds"] = round(time.time() - start, 2)
        folder.write_layers(pid, report, channels)
        folder.append(row)
        return row

