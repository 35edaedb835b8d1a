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
import itertools
import time
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

import noisesim
from noisesim import distributed
from noisesim.allocate import Allocation, AllocationJob, AllocationProblem, Allocator
from noisesim.batches import split_batch
from noisesim.data.registry import build_data
from noisesim.data.tensors import DeviceBatches, TensorBatches, hold_out, peek
from noisesim.energy import EnergyCosts
from noisesim.experiment.config import ExperimentConfig, Point
from noisesim.experiment.folder import RunFolder
from noisesim.experiment.phases import Phases
from noisesim.io import load_partial, load_state_dict, save_checkpoint
from noisesim.models.zoo import build_model
from noisesim.nn.adc import ADC
from noisesim.provenance import provenance
from noisesim.quant.fake_quant import FakeQuantize
from noisesim.registry import ALLOCATORS, MODELS, PluginError, one_line
from noisesim.stats import SCORES, metric_interval
from noisesim.train.loop import evaluate_outcomes
from noisesim.train.qat import QATConfig, QATSettings, quantization_aware_training


def make_allocator(cfg: ExperimentConfig, p: Point, memo: Optional[dict] = None) -> Allocator:
    """The point's allocation method, built from its Settings: each field takes the point's value (a sweep
    setting) or the experiment's (a plugin's own settings keep their defaults). ``memo``: the sweep's store of
    what methods keep between targets, keyed by the point's noise and noise-free network (not with --qat, whose
    networks are trained per point)."""
    method = ALLOCATORS.get(p.allocation)
    job = AllocationJob(train_energy=cfg.quantity == "energy" and p.noisy,
                        train_bits=cfg.trains_bits(p), train_ranges=cfg.train_qminmax,
                        target_weight_bits=p.target_weight_bits, target_act_bits=p.target_act_bits,
                        generated_labels=cfg.generated_labels, progress=cfg.progress,
                        desc=f"{p.label} {p.noise_type} E={p.energy}", memo=None if cfg.qat else memo,
                        memo_key=f"{p.noise_type} {cfg.clean_id(p)}")
    try:
        return method.from_settings(cfg.settings(method.Settings, p), job)
    except Exception as e:
        raise PluginError(f"--allocation {p.allocation}: cannot be made from its settings ({one_line(e)})") from None


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
        self.phases = Phases()
        self.device = distributed.device_for(cfg.device)
        distributed.init_from_env(self.device)
        spec = MODELS.get(cfg.model)
        val_subset = cfg.eval_batches * cfg.val_batch_size if cfg.eval_batches else None
        self.data = build_data(cfg.dataset, cfg.data_path, cfg.train_batch_size, cfg.val_batch_size,
                               cfg.train_subset, cfg.seed[0], val_subset, spec.input_size,
                               normalization=spec.normalization,
                               tokenizer_name=spec.tokenizer(cfg.dataset, cfg.checkpoint_path) if spec.tokenizer else None)
        if not self.data.train_labels and not cfg.generated_labels and any(cfg.trains(p) for p in cfg.points()):
            raise ValueError(f"--dataset {cfg.dataset}: its training images carry no labels; trained allocations "
                             "need --generated_labels")
        self.model = build_model(cfg.model, cfg.dataset, self.data.num_classes, self.data.in_channels,
                                 cfg.checkpoint_path, cfg.model_options, cfg.partial_checkpoint).to(self.device)
        self.baseline = getattr(self.model, "baseline", "")
        for prm in self.model.parameters():
            prm.requires_grad_(False)
        # the data sets' batches on the device (cfg.train_batches is a number of training steps)
        self.train_data = DeviceBatches(self.data.train, self.device)
        self.val_data = DeviceBatches(self.data.val, self.device)
        # every point calibrates on the same training batches, whichever points ran before it (or in an earlier
        # invocation, with --resume)
        self.calibration = list(itertools.islice(self.train_data, cfg.calibration_batches))
        self.coverage = self._coverage()
        self.provenance = provenance(self.device)
        if cfg.qat and cfg.qat_val_samples:
            if not isinstance(self.data.train, TensorBatches):
                raise ValueError(f"--qat_val_samples {cfg.qat_val_samples}: holding out validation samples needs "
                                 f"an in-memory training set, which --dataset {cfg.dataset} is not; pass 0")
            if cfg.qat_val_samples >= len(self.data.train.targets):
                raise ValueError(f"--qat_val_samples {cfg.qat_val_samples}: the training set holds only "
                                 f"{len(self.data.train.targets)} samples; hold out fewer (0: keep the last epoch)")
        self.folder: Optional[RunFolder] = None  # where trained networks are kept (set by run_points)
        self._qat: dict[str, dict[str, Any]] = {}
        self.last_allocation: Optional[Allocation] = None
        self.task = self.data.task
        self.targets: Optional[np.ndarray] = None
        self._float: Optional[Scores] = None
        self._clean: dict[str, Scores] = {}
        self.memo: dict = {}  # what allocation methods keep between the targets of the sweep (AllocationJob.memo)
        self.phases.seconds["data and model"] = time.perf_counter() - self.phases.start

    def _coverage(self) -> noisesim.Coverage:
        """How much of the model ``prepare`` instruments, on one training batch; below ``--min_coverage``
        a CoverageError (before anything is written)."""
        probe = noisesim.prepare(self.model, noisesim.SimConfig(weight_bits=None, act_bits=None))
        inputs, _ = split_batch(peek(self.train_data))
        cov = noisesim.measure_coverage(probe, inputs)
        if cov.fraction < self.cfg.min_coverage:
            raise noisesim.CoverageError(f"--min_coverage {self.cfg.min_coverage:g}: {cov.summary()}")
        return cov

    def point_id(self, p: Point) -> str:
        return self.cfg.point_id(p)

    # -- evaluation ---------------------------------------------------------------
    def evaluate(self, model: nn.Module, draws: int, desc: str = "eval", phase: str = "evaluation") -> Scores:
        """``draws`` noise draws over the evaluation set; interval by bootstrap over examples and draws."""
        seeded = distributed.active()  # noise keyed by (draw, batch): the same whichever process evaluates a batch
        with self.phases(phase):
            runs = [evaluate_outcomes(model, self.val_data, self.task, self.cfg.progress, f"{desc} {i + 1}/{draws}",
                                      batch_seed=i if seeded else None)
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
        key = self.cfg.noise_free(p)
        cid = self.cfg.clean_id(p) if not self.cfg.qat else \
            "clean-" + hashlib.sha1(repr((key, self.qat_point(p))).encode()).hexdigest()[:8]
        if cid not in self._clean:
            self._clean[cid] = self.evaluate(self.build(key, qat_from=p), 1, "noise-free quantized")
            folder.write_outcomes(cid, self._clean[cid].outcomes, self.targets, self.task.name)
        return cid, self._clean[cid]

    # -- one point ----------------------------------------------------------------
    def build(self, p: Point, qat_from: Optional[Point] = None) -> nn.Module:
        """The point's prepared, calibrated model; with --qat, carrying the weights and ranges that
        quantization-aware training found for the quantization setting of ``qat_from`` (default: ``p``)."""
        torch.manual_seed(p.seed)
        sim = noisesim.prepare(self.model, self.cfg.sim_config(p))
        noisesim.calibrate(sim, self.calibration)
        if self.cfg.qat:
            sim.load_state_dict(self.qat_network(qat_from or p)["state"], strict=False)
            for q in sim.modules():
                if isinstance(q, FakeQuantize):
                    q.touch()
        return sim

    # -- quantization-aware training ------------------------------------------------
    def qat_point(self, p: Point) -> Point:
        """The setting a point's network is trained in: its quantization, and its noise at --qat_emac (if set)."""
        if self.cfg.qat_emac is None or not p.noisy:
            return self.cfg.noise_free(p)
        return dataclasses.replace(p, allocation="uniform", e_mac=None, target_emac=self.cfg.qat_emac, lambd=None,
                                   lr=None, target_weight_bits=None, target_act_bits=None,
                                   granularity=p.granularity if self.cfg.qat_energies else "layer")

    def qat_network(self, p: Point) -> dict[str, Any]:
        """The trained weights and ranges of ``p``'s quantization setting: trained once, kept in the run folder's
        ``qat/<key>.pt`` (resumable from ``qat/<key>.resume.pt``), then reused by every point that shares it."""
        qp = self.qat_point(p)
        settings = {k: getattr(self.cfg, k) for k in ("qat_epochs", "qat_lr", "qat_emac", "qat_energies",
                                                      "qat_val_samples", "weight_learning", "act_learning",
                                                      "qat_init")}
        key = "qat-" + hashlib.sha1(repr((qp, sorted(settings.items()))).encode()).hexdigest()[:10]
        if key in self._qat:
            return self._qat[key]
        path = self.folder.path / "qat" / f"{key}.pt" if self.folder is not None else None
        if path is not None and path.is_file():
            self._qat[key] = {"state": load_state_dict(path, "--resume"), **_qat_info(path)}
            return self._qat[key]
        cfg = self.cfg
        torch.manual_seed(qp.seed)
        sim = noisesim.prepare(self.model, cfg.sim_config(qp))
        noisesim.calibrate(sim, self.calibration)
        init = {}
        if cfg.qat_init:
            report = load_partial(sim, load_state_dict(cfg.qat_init, "--qat_init"))
            for q in sim.modules():
                if isinstance(q, FakeQuantize):
                    q.touch()
            init = {"qat_init_left_out": " ".join(k for k, _, _ in report["mismatched"]) or None}
        train, val = self.data.train, None
        if cfg.qat_val_samples:
            train, val = hold_out(self.data.train, cfg.qat_val_samples, qp.seed)
            val = DeviceBatches(val, self.device)
        t0 = time.time()
        with self.phases("quantization-aware training"):
            result = quantization_aware_training(
                sim, DeviceBatches(train, self.device), val, self.task,
                QATConfig.from_settings(cfg.settings(QATSettings), qp.noisy, cfg.lambd[0], cfg.generated_labels,
                                        cfg.progress),
                teacher=self.model, state_path=None if path is None else path.with_suffix(".resume.pt"),
                save=distributed.is_main())
        info = {"qat_key": key, "qat_seconds": round(time.time() - t0, 1), "qat_steps": len(result.train.history),
                "qat_best_epoch": result.best_epoch, "qat_val_accuracy": result.best_score, **init}
        state = {k: v for k, v in sim.state_dict().items() if ".noise." not in k or cfg.qat_energies}
        if path is not None and distributed.is_main():
            save_checkpoint(path, state)
            save_checkpoint(path.with_suffix(".info.pt"), {k: v for k, v in info.items() if v is not None})
            path.with_suffix(".resume.pt").unlink(missing_ok=True)
        self._qat[key] = {"state": state, **info}
        return self._qat[key]

    def allocate(self, sim: nn.Module, p: Point, start: Optional[Allocation] = None) -> Allocation:
        """Run the point's method on ``sim``; ``start``: an allocation to start from (rescaled to the target)."""
        target = p.energy
        if start is not None and target is not None:
            start.with_average_energy(target).apply(sim)
        problem = AllocationProblem(sim, target, p.granularity, self.train_data, self.task, teacher=self.model,
                                    quantity=self.cfg.quantity, target_weight_bits=p.target_weight_bits,
                                    target_act_bits=p.target_act_bits)
        alloc = make_allocator(self.cfg, p, self.memo).allocate(problem)
        if not isinstance(alloc, Allocation):
            raise PluginError(f"--allocation {p.allocation}: allocate() returned {type(alloc).__name__}, not an "
                              "Allocation")
        # what the model runs: ``apply`` rounded whole photons within the budget
        return alloc.in_whole_photons() if self.cfg.quantize_energy and target is not None else alloc

    def run_point(self, p: Point, folder: RunFolder, writer=None, compare_uniform: bool = True,
                  start: Optional[Allocation] = None) -> dict[str, Any]:
        """Run one point and append its row; ``compare_uniform`` also evaluates a uniform allocation of the
        point's average energy (for non-uniform allocations)."""
        t0 = time.time()
        pid = self.point_id(p)
        float_scores = self.float_scores(folder)
        clean_id, clean = self.clean_scores(p, folder)
        with self.phases("prepare and calibrate"):
            sim = self.build(p)
        with self.phases("allocation"):
            alloc = self.allocate(sim, p, start)
        qat = {k: v for k, v in self.qat_network(p).items() if k != "state"} if self.cfg.qat else {}
        history = alloc.info.pop("history", [])
        if writer is not None:
            for h in history:
                for k, v in h.items():
                    if k != "step":
                        writer.add_scalar(f"train/{pid}/{k}", v, h["step"])
        for n in sim.modules():
            if isinstance(n, noisesim.noise.NoiseModel):
                n.reset_snr()  # SNR and ADC clipping of the evaluation only
            elif isinstance(n, ADC):
                n.reset_counts()
        draws = self.cfg.mc_repeats if p.noisy else 1
        scores = self.evaluate(torch.compile(sim) if self.cfg.compile else sim, draws)
        report = noisesim.energy_report(sim, costs=EnergyCosts.of(self.cfg))
        channels = noisesim.channel_report(sim) if p.granularity == "channel" or self.cfg.record_snr else None
        row: dict[str, Any] = {"point_id": pid, **dataclasses.asdict(p), "allocation_label": p.label,
                               **self.cfg.recorded_for(p), **scores.columns("accuracy"), "metric": self.task.name,
                               "examples": scores.outcomes.shape[1], "draws": draws,
                               "float_accuracy": float_scores.value, "clean_accuracy": clean.value,
                               "clean_id": clean_id, "baseline": self.baseline, **qat, **self.provenance}
        a = report.attrs
        row.update(avg_emac=a["avg_energy"], avg_emac_aj=a["avg_energy_aj"], avg_weight_bits=a["avg_weight_bits"],
                   avg_act_bits=a["avg_act_bits"], avg_noise_bits=a["avg_noise_bits"],
                   mean_snr_db=float(report["snr_db"].mean()) if report["snr_db"].notna().any() else None,
                   macs=a["macs"], coverage=a["coverage"], uncovered=a["uncovered"] or None, **{k: v for k, v in alloc.info.items() if not isinstance(v, (list, dict))})
        if self.cfg.tile_rows is not None or self.cfg.adc_bits is not None:  # the hardware is modelled
            row.update({k: a[k] for k in ("energy_j", "energy_optical_j", "energy_adc_j", "energy_dac_j",
                                          "energy_per_mac_j", "adc_clip_rate")})
        if self.cfg.noise_as_quantizer and p.noisy:
            with noisesim.noise_as_quantizer(sim):
                row.update(self.evaluate(sim, draws, "equivalent quantizer").columns("noise_bits_accuracy"))
        if compare_uniform and self.cfg.compare_uniform and p.allocation != "uniform" and p.noisy:
            uniform = alloc.uniform(alloc.average_energy()).apply(copy.deepcopy(sim))
            row.update(self.evaluate(uniform, draws, "uniform at the same energy", "uniform at the same energy").columns(
                "uniform_accuracy_same_energy"))
        row["seconds"] = round(time.time() - t0, 2)
        self.last_allocation = alloc
        folder.write_point(pid, report, channels, alloc)
        folder.write_outcomes(pid, scores.outcomes, self.targets, self.task.name)
        folder.append(row)
        return row

    # -- a sweep --------------------------------------------------------------------
    def run_points(self, points: list[Point], folder: RunFolder, writer=None):
        """Run every point not yet in the folder; trained allocations run from the highest target down,
        each starting from the previous target's solution when ``continuation`` is on. Yields the rows."""
        self.folder = folder
        done = folder.done()

        def chain(p: Point) -> Optional[Point]:
            return dataclasses.replace(p, e_mac=None, target_emac=None) if p.allocation == "trained" and \
                self.cfg.continuation else None

        order = sorted(range(len(points)), key=lambda i: (chain(points[i]) is not None,
                                                          repr(chain(points[i])), -(points[i].energy or 0)))
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
                previous[key] = self.last_allocation
            yield p, row


def _qat_info(path) -> dict[str, Any]:
    """What was recorded about a kept trained network (its ``.info.pt`` beside it)."""
    info = path.with_suffix(".info.pt")
    if not info.is_file():
        return {}
    return {k: (v.item() if torch.is_tensor(v) else v) for k, v in torch.load(info, weights_only=True).items()}
