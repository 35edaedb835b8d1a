"""Running sweep points: prepare -> calibrate -> allocate -> Monte-Carlo evaluate -> one result row.

A point is one allocation method (uniform, trained, ...) at one granularity of one noise model at
one average energy and one quantization setting (see :class:`noisesim.experiment.config.Point`).
The allocation method sees training batches only; the evaluation batches are the test set (or
its fixed subset). Every evaluation keeps its per-example outcomes for every noise draw
(``outcomes/<point_id>.npz``), so intervals bootstrap over test examples and noise draws without
new forwards; the float model and the noise-free quantized model are evaluated once each as
references. Trained points of one sweep run from the highest target down, each starting from the
previous target's solution (continuation). Non-uniform allocations are also compared with a
uniform allocation of the same average energy.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import time
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

import noisesim
from noisesim.allocate import (Allocation, AllocationProblem, Allocator, ClosedFormAllocator, GreedyAllocator,
                               HessianAllocator, TrainedAllocator, TrainedSettings)
from noisesim.batches import split_batch
from noisesim.data.registry import build_data
from noisesim.data.tensors import DeviceBatches
from noisesim.experiment.config import ExperimentConfig, Point
from noisesim.experiment.folder import RunFolder
from noisesim.models.zoo import build_model
from noisesim.provenance import provenance
from noisesim.registry import ALLOCATORS, MODELS
from noisesim.stats import SCORES, metric_interval
from noisesim.train.loop import TrainConfig, evaluate_outcomes


def make_allocator(cfg: ExperimentConfig, p: Point) -> Allocator:
    """The allocation method of a point with its settings from the experiment.

    A uniform point that trains bit-widths or ranges runs the trained method with energies frozen."""
    if p.allocation == "uniform" and not cfg.trains(p):
        return ALLOCATORS.get("uniform")()
    if p.allocation == "closed_form":
        return ClosedFormAllocator(cfg.sensitivity, cfg.sensitivity_batches)
    if p.allocation == "hessian":
        return HessianAllocator(cfg.sensitivity_batches, cfg.hutchinson_iters, cfg.hutchinson_tol)
    if p.allocation == "greedy":
        return GreedyAllocator(cfg.greedy_epsilon, cfg.greedy_factor, cfg.sensitivity_batches)
    if p.allocation in ("uniform", "trained"):
        train = TrainConfig(steps=cfg.train_batches, lr=p.lr, optimizer=cfg.optimizer, schedule=cfg.lr_schedule,
                            generated_labels=cfg.generated_labels,
                            eval_every=cfg.checkpoint_every if cfg.checkpoint else 0, progress=cfg.progress,
                            desc=f"train {p.label} {p.noise_type} E={p.target_emac}")
        return TrainedAllocator(TrainedSettings(
            train, energy=p.allocation == "trained" and cfg.allocate == "energy" and p.noise_type != "none",
            bits=cfg.trains_bits(p), ranges=cfg.train_qminmax,
            lambd=p.lambd, constrained=cfg.constrained_loss, target_weight_bits=p.target_weight_bits,
            target_act_bits=p.target_act_bits, max_act=cfg.max_act, checkpoint=cfg.checkpoint,
            window=cfg.converge_window, tol=cfg.converge_tol))
    return ALLOCATORS.get(p.allocation)()


@dataclasses.dataclass
class Scores:
    """A Monte-Carlo evaluation: the metric, its bootstrap interval and the (draws, examples) outcomes."""

    value: float
    lo: float
    hi: float
    outcomes: np.ndarray

    def columns(self, name: str) -> dict[str, float]:
        return {name: self.value, f"{name}_lo": self.lo, f"{name}_hi": self.hi,
                f"{name}_ci95": (self.hi - self.lo) / 2}


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
        if not self.data.train_labels and not cfg.generated_labels and any(cfg.trains(p) for p in cfg.points()):
            raise ValueError(f"--dataset {cfg.dataset}: its training images carry no labels; trained allocations "
                             "need --generated_labels")
        self.model = build_model(cfg.model, cfg.dataset, self.data.num_classes, self.data.in_channels,
                                 cfg.checkpoint_path).to(self.device)
        self.baseline = getattr(self.model, "baseline", "")
        for prm in self.model.parameters():
            prm.requires_grad_(False)
        self.train_batches = DeviceBatches(self.data.train, self.device)
        self.val_batches = DeviceBatches(self.data.val, self.device)
        self.coverage = self._coverage()
        self.provenance = provenance(self.device)
        self.task = self.data.task
        self.targets: Optional[np.ndarray] = None
        self._float: Optional[Scores] = None
        self._clean: dict[str, Scores] = {}

    def _coverage(self) -> noisesim.Coverage:
        """How much of the model ``prepare`` instruments, on one training batch; below ``--min_coverage``
        a CoverageError (before anything is written)."""
        probe = noisesim.prepare(self.model, noisesim.SimConfig(weight_bits=None, act_bits=None))
        inputs, _ = split_batch(next(iter(self.train_batches)))
        cov = noisesim.measure_coverage(probe, inputs)
        if cov.fraction < self.cfg.min_coverage:
            raise noisesim.CoverageError(f"--min_coverage {self.cfg.min_coverage:g}: {cov.summary()}")
        return cov

    def point_id(self, p: Point) -> str:
        return p.point_id(self.cfg.point_settings(p.allocation))

    # -- evaluation ---------------------------------------------------------------
    def evaluate(self, model: nn.Module, draws: int, desc: str = "eval") -> Scores:
        """``draws`` noise draws over the evaluation set; interval by bootstrap over examples and draws."""
        runs = [evaluate_outcomes(model, self.val_batches, self.task, self.cfg.progress, f"{desc} {i + 1}/{draws}")
                for i in range(draws)]
        self.targets = runs[0][1]
        outcomes = np.stack([o for o, _ in runs])
        score = SCORES[self.task.name]
        value = float(np.mean([score(o, self.targets) for o in outcomes]))
        lo, hi = metric_interval(outcomes, self.targets, self.cfg.bootstrap, seed=0, score=score)
        return Scores(value, lo, hi, outcomes)

    def float_scores(self, folder: RunFolder) -> Scores:
        if self._float is None:
            self._float = self.evaluate(self.model, 1, "float model")
            folder.write_outcomes("float", self._float.outcomes, self.targets, self.task.name)
        return self._float

    def clean_scores(self, p: Point, folder: RunFolder) -> tuple[str, Scores]:
        """The noise-free quantized model of the point's quantization setting (evaluated once per setting)."""
        key = dataclasses.replace(p, noise_type="none", allocation="uniform", granularity="layer", target_emac=None,
                                  lambd=None, lr=None, target_weight_bits=None, target_act_bits=None)
        cid = "clean-" + hashlib.sha1(repr(key).encode()).hexdigest()[:8]
        if cid not in self._clean:
            self._clean[cid] = self.evaluate(self.build(key), 1, "noise-free quantized")
            folder.write_outcomes(cid, self._clean[cid].outcomes, self.targets, self.task.name)
        return cid, self._clean[cid]

    # -- one point ----------------------------------------------------------------
    def build(self, p: Point) -> nn.Module:
        torch.manual_seed(p.seed)
        sim = noisesim.prepare(self.model, self.cfg.sim_config(p))
        noisesim.calibrate(sim, self.train_batches, max_batches=self.cfg.calibration_batches)
        return sim

    def allocate(self, sim: nn.Module, p: Point, start: Optional[Allocation] = None) -> Allocation:
        """Run the point's method on ``sim``; ``start``: an allocation to start from (rescaled to the target)."""
        target = p.target_emac if p.noise_type != "none" else None
        if start is not None and target is not None:
            start.with_average_energy(target).apply(sim)
        problem = AllocationProblem(sim, target, p.granularity, self.train_batches, self.task, teacher=self.model,
                                    quantity=self.cfg.allocate, target_weight_bits=p.target_weight_bits)
        return make_allocator(self.cfg, p).allocate(problem)

    def run_point(self, p: Point, folder: RunFolder, writer=None, compare_uniform: bool = True,
                  start: Optional[Allocation] = None) -> dict[str, Any]:
        """Run one point and append its row; ``compare_uniform`` also evaluates a uniform allocation of the
        point's average energy (for non-uniform allocations)."""
        t0 = time.time()
        pid = self.point_id(p)
        float_scores = self.float_scores(folder)
        clean_id, clean = self.clean_scores(p, folder)
        sim = self.build(p)
        alloc = self.allocate(sim, p, start)
        history = alloc.info.pop("history", [])
        if writer is not None:
            for h in history:
                for k, v in h.items():
                    if k != "step":
                        writer.add_scalar(f"train/{pid}/{k}", v, h["step"])
        for n in sim.modules():
            if isinstance(n, noisesim.noise.NoiseModel):
                n.reset_snr()  # SNR of the evaluation only
        draws = self.cfg.mc_repeats if p.noise_type != "none" else 1
        scores = self.evaluate(sim, draws)
        report = noisesim.energy_report(sim, photon_energy_aj=self.cfg.photon_energy)
        channels = noisesim.channel_report(sim) if p.granularity == "channel" or self.cfg.record_snr else None
        row: dict[str, Any] = {"point_id": pid, **dataclasses.asdict(p), "allocation_label": p.label,
                               **self.cfg.recorded_for(p), **scores.columns("accuracy"), "metric": self.task.name,
                               "examples": scores.outcomes.shape[1], "draws": draws,
                               "float_accuracy": float_scores.value, "clean_accuracy": clean.value,
                               "clean_id": clean_id, "baseline": self.baseline, **self.provenance}
        a = report.attrs
        row.update(avg_emac=a["avg_energy"], avg_emac_aj=a["avg_energy_aj"], avg_weight_bits=a["avg_weight_bits"],
                   avg_act_bits=a["avg_act_bits"], avg_noise_bits=a["avg_noise_bits"],
                   mean_snr_db=float(report["snr_db"].mean()) if report["snr_db"].notna().any() else None,
                   macs=a["macs"], coverage=a["coverage"], uncovered=a["uncovered"] or None, **{k: v for k, v in alloc.info.items() if not isinstance(v, (list, dict))})
        if self.cfg.override_with_noise_bits and p.noise_type != "none":
            with noisesim.noise_as_quantizer(sim):
                row.update(self.evaluate(sim, draws, "equivalent quantizer").columns("noise_bits_accuracy"))
        if compare_uniform and self.cfg.compare_uniform and p.allocation != "uniform" and p.noise_type != "none":
            uniform = alloc.uniform(alloc.average_energy()).apply(copy.deepcopy(sim))
            row.update(self.evaluate(uniform, draws, "uniform at the same energy").columns(
                "uniform_accuracy_same_energy"))
        row["seconds"] = round(time.time() - t0, 2)
        folder.write_point(pid, report, channels, alloc)
        folder.write_outcomes(pid, scores.outcomes, self.targets, self.task.name)
        folder.append(row)
        return row

    # -- a sweep --------------------------------------------------------------------
    def run_points(self, points: list[Point], folder: RunFolder, writer=None):
        """Run every point not yet in the folder; trained allocations run from the highest target down,
        each starting from the previous target's solution when ``continuation`` is on. Yields the rows."""
        done = folder.done()

        def chain(p: Point) -> Optional[Point]:
            return dataclasses.replace(p, target_emac=None) if p.allocation == "trained" and \
                self.cfg.continuation else None

        order = sorted(range(len(points)), key=lambda i: (chain(points[i]) is not None,
                                                          repr(chain(points[i])), -(points[i].target_emac or 0)))
        previous: dict[Point, Allocation] = {}
        for i in order:
            p, pid = points[i], self.point_id(points[i])
            key = chain(p)
            if pid in done:
                if key is not None and folder.has_allocation(pid):
                    previous[key] = folder.read_allocation(pid)
                continue
            row = self.run_point(p, folder, writer, start=previous.get(key))
            if key is not None:
                previous[key] = folder.read_allocation(pid)
            yield p, row
