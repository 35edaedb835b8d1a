"""Running one sweep point: prepare -> calibrate -> allocate -> Monte-Carlo evaluate -> one result row.

A point is one allocation method (uniform, trained, ...) at one granularity of one noise model at
one average energy and one quantization setting (see :class:`noisesim.experiment.config.Point`).
The allocation method sees training batches only; the evaluation batches are the test set (or
its fixed subset). Non-uniform allocations are also compared with a uniform allocation of the
same average energy.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any, Optional

import torch
from torch import nn

import noisesim
from noisesim.allocate import Allocation, AllocationProblem, Allocator, TrainedAllocator, TrainedSettings
from noisesim.data.registry import build_data
from noisesim.data.tensors import DeviceBatches
from noisesim.experiment.config import ExperimentConfig, Point
from noisesim.experiment.folder import RunFolder
from noisesim.experiment.montecarlo import mc_evaluate
from noisesim.models.zoo import build_model
from noisesim.registry import ALLOCATORS, MODELS
from noisesim.train.loop import TrainConfig, evaluate


def make_allocator(cfg: ExperimentConfig, p: Point) -> Allocator:
    """The allocation method of a point with its settings from the experiment.

    A uniform point that trains bit-widths or ranges runs the trained method with energies frozen."""
    if p.allocation == "uniform" and not cfg.trains(p):
        return ALLOCATORS.get("uniform")()
    if p.allocation in ("uniform", "trained"):
        train = TrainConfig(steps=cfg.train_batches, lr=p.lr, optimizer=cfg.optimizer,
                            generated_labels=cfg.generated_labels,
                            eval_every=cfg.checkpoint_every if cfg.checkpoint else 0, progress=cfg.progress,
                            desc=f"train {p.label} {p.noise_type} E={p.target_emac}")
        return TrainedAllocator(TrainedSettings(
            train, energy=p.allocation == "trained", bits=cfg.train_bitwidth, ranges=cfg.train_qminmax,
            lambd=p.lambd, constrained=cfg.constrained_loss, target_weight_bits=p.target_weight_bits,
            target_act_bits=p.target_act_bits, max_act=cfg.max_act, checkpoint=cfg.checkpoint))
    return ALLOCATORS.get(p.allocation)()


class Experiment:
    """The float model, its data, and how to turn a Point into a result row."""

    def __init__(self, cfg: ExperimentConfig):
        self.cfg = cfg
        self.device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        spec = MODELS.get(cfg.model)
        val_subset = cfg.eval_batches * cfg.val_batch_size if cfg.eval_batches else None
        self.data = build_data(cfg.dataset, cfg.data_path, cfg.train_batch_size, cfg.val_batch_size,
                               cfg.train_subset, cfg.seed[0], val_subset, spec.input_size,
                               normalization=spec.normalization, tokenizer_name=cfg.checkpoint_path)
        self.model = build_model(cfg.model, cfg.dataset, self.data.num_classes, self.data.in_channels,
                                 cfg.checkpoint_path).to(self.device)
        self.baseline = getattr(self.model, "baseline", "")
        for prm in self.model.parameters():
            prm.requires_grad_(False)
        self.train_batches = DeviceBatches(self.data.train, self.device)
        self.val_batches = DeviceBatches(self.data.val, self.device)
        self.task = self.data.task
        self.recorded = cfg.recorded()
        self._float_acc: Optional[float] = None

    def point_id(self, p: Point) -> str:
        return p.point_id(self.recorded)

    # -- evaluation ---------------------------------------------------------------
    def float_accuracy(self) -> float:
        if self._float_acc is None:
            self._float_acc = evaluate(self.model, self.val_batches, self.task, progress=self.cfg.progress,
                                       desc="float model")
        return self._float_acc

    def _evaluate(self, sim: nn.Module) -> tuple[float, float]:
        mean, ci, _ = mc_evaluate(sim, self.val_batches, self.task, self.cfg.mc_repeats, progress=self.cfg.progress)
        return mean, ci

    # -- one point ----------------------------------------------------------------
    def build(self, p: Point) -> nn.Module:
        torch.manual_seed(p.seed)
        sim = noisesim.prepare(self.model, self.cfg.sim_config(p))
        noisesim.calibrate(sim, self.train_batches, max_batches=self.cfg.calibration_batches)
        return sim

    def allocate(self, sim: nn.Module, p: Point) -> Allocation:
        problem = AllocationProblem(sim, p.target_emac if p.noise_type != "none" else None, p.granularity,
                                    self.train_batches, self.task, teacher=self.model)
        return make_allocator(self.cfg, p).allocate(problem)

    def run_point(self, p: Point, folder: RunFolder, writer=None, compare_uniform: bool = True) -> dict[str, Any]:
        """Run one point and append its row; ``compare_uniform`` also evaluates a uniform allocation of the
        point's average energy (for non-uniform allocations)."""
        start = time.time()
        pid = self.point_id(p)
        sim = self.build(p)
        alloc = self.allocate(sim, p)
        history = alloc.info.pop("history", [])
        if writer is not None:
            for h in history:
                for k, v in h.items():
                    if k != "step":
                        writer.add_scalar(f"train/{pid}/{k}", v, h["step"])
        for n in sim.modules():
            if isinstance(n, noisesim.noise.NoiseModel):
                n.reset_snr()  # SNR of the evaluation only
        acc, ci = self._evaluate(sim)
        report = noisesim.energy_report(sim, photon_energy_aj=self.cfg.photon_energy)
        channels = noisesim.channel_report(sim) if p.granularity == "channel" or self.cfg.record_snr else None
        row: dict[str, Any] = {"point_id": pid, **dataclasses.asdict(p), "allocation_label": p.label,
                               **self.recorded, "accuracy": acc, "accuracy_ci95": ci,
                               "float_accuracy": self.float_accuracy(), "baseline": self.baseline}
        a = report.attrs
        row.update(avg_emac=a["avg_energy"], avg_emac_aj=a["avg_energy_aj"], avg_weight_bits=a["avg_weight_bits"],
                   avg_act_bits=a["avg_act_bits"], avg_noise_bits=a["avg_noise_bits"],
                   mean_snr_db=float(report["snr_db"].mean()) if report["snr_db"].notna().any() else None,
                   macs=a["macs"], **alloc.info)
        if self.cfg.override_with_noise_bits and p.noise_type != "none":
            with noisesim.noise_as_quantizer(sim):
                row["noise_bits_accuracy"], row["noise_bits_accuracy_ci95"] = self._evaluate(sim)
        if compare_uniform and p.allocation != "uniform" and p.noise_type != "none":
            uniform = alloc.uniform(alloc.average_energy()).apply(copy.deepcopy(sim))
            row["uniform_accuracy_same_energy"], row["uniform_accuracy_same_energy_ci95"] = self._evaluate(uniform)
        row["seconds"] = round(time.time() - start, 2)
        folder.write_point(pid, report, channels, alloc)
        folder.append(row)
        return row
