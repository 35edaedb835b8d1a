"""The experiment configuration: one typed, validated dataclass behind ``main.py``.

Every field carries its help text, unit, group and whether it sweeps; from these the command-
line parser (``noisesim.experiment.cli``), the YAML loader, the sweep points, the confounder
columns of results.csv and the settings table of the quantization card are all derived.
Validation happens here, once, whoever builds the config (parser, YAML, Python).

A sweep field holds a tuple; the experiment runs the Cartesian product of all of them (the
:class:`Point` s), one result row each. Settings that cannot change a point's result (no
learning rate without training, no percentile without the percentile observer, ...) are blanked
so that equivalent points collapse and the rows say "does not apply" with an empty cell.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import noisesim.allocate  # noqa: F401  (registers the allocation methods)
import noisesim.data.registry  # noqa: F401  (registers the data sets)
import noisesim.models.zoo  # noqa: F401  (registers the models)
from noisesim.allocate.base import QUANTITIES
from noisesim.config import BIT_ROUNDING, NOISE_BITS_RANGES, ConfigError, SimConfig, bits_problem
from noisesim.experiment.settings import (at_least_one, check_field, coerce, fraction, in_range, non_negative,
                                          parse_bits, parse_mapping, percentile_range, positive, registered, setting)
from noisesim.registry import ALLOCATORS, DATASETS, MODELS, NOISE_MODELS, OBSERVERS
from noisesim.stats import FITS

GRANULARITIES = ("layer", "channel")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine")
REFERENCES = ("float", "quantized")
GROUPS = ("model and data", "quantization", "quantization-aware training", "analog noise", "allocation",
          "evaluation and search", "run")


@dataclass(frozen=True)
class Point:
    """One sweep point: a value for every sweep field (blanked to None where it does not apply)."""

    noise_type: str
    allocation: str
    granularity: str
    target_emac: Optional[float]
    weight_bits: Optional[int]
    act_bits: Optional[int]
    target_weight_bits: Optional[float]
    target_act_bits: Optional[float]
    lambd: Optional[float]
    lr: Optional[float]
    percentile: Optional[float]
    seed: int

    @property
    def label(self) -> str:
        """How plots and tables name this point's allocation: 'uniform', 'trained per channel', ..."""
        return allocation_label(self.allocation, self.granularity)

    def point_id(self, settings: dict[str, Any]) -> str:
        blob = json.dumps({**dataclasses.asdict(self), **settings}, sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def allocation_label(method: str, granularity: str) -> str:
    return "uniform" if method == "uniform" else f"{method.replace('_', ' ')} per {granularity}"


M, Q, T, N, A, E, R = GROUPS
RANGE_LEARNINGS = ("none", "ste", "lsq", "pact")


@dataclass(frozen=True)
class ExperimentConfig:
    """What ``main.py`` runs. Field names are the command-line flags and the YAML keys."""

    # model and data
    model: str = setting("resnet20", "network", M, choices=registered(MODELS))
    dataset: str = setting("fashion_mnist", "data set", M, choices=registered(DATASETS), label="data set")
    data_path: Optional[str] = setting(None, "data folder (default for fashion_mnist: the Debian package's files)",
                                       M, record=False, parse=str)
    checkpoint_path: Optional[str] = setting(None, "float weights (.pt state_dict) to load instead of the default; "
                                             "for bert_base a Hugging Face folder or hub id", M, parse=str)
    model_options: Optional[dict] = setting(None, "architecture options as a mapping (JSON on the command line), "
                                            "e.g. {\"chokepoint\": 8, \"choke_channels\": 8} for vgg16", M,
                                            parse=parse_mapping, keyed_when_set=True)
    partial_checkpoint: bool = setting(False, "load only the --checkpoint_path tensors that fit the model (a "
                                       "narrowed layer starts afresh) and list the rest", M, keyed_when_set=True)
    train_subset: Optional[int] = setting(None, "use a seeded random subset of N training samples", M, unit="samples",
                                          parse=int, check=at_least_one)
    train_batch_size: int = setting(64, "samples per training / calibration batch", M, unit="samples",
                                    check=at_least_one)
    val_batch_size: int = setting(500, "samples per evaluation batch", M, unit="samples", check=at_least_one)
    eval_batches: Optional[int] = setting(None, "evaluate on a fixed random subset of this many batches "
                                          "(default: the whole test set)", M, unit="batches", parse=int,
                                          check=at_least_one)
    calibration_batches: int = setting(4, "training batches used to calibrate activation ranges", M,
                                       unit="batches", check=at_least_one)
    min_coverage: float = setting(0.0, "stop with an error unless at least this fraction of the model's MACs "
                                  "(counted by torch's FlopCounterMode) runs in instrumented layers", M,
                                  check=in_range(0, 1), record=False, point=False)

    # quantization
    weight_bits: tuple = setting((8,), "weight bits (none: float)", Q, sweep=True, unit="bits", parse=parse_bits,
                                 check=bits_problem)
    act_bits: tuple = setting((8,), "activation (input) bits (none: float)", Q, sweep=True, unit="bits",
                              parse=parse_bits, check=bits_problem)
    weight_symmetric: bool = setting(True, "symmetric weight quantization (zero point 0)", Q)
    act_symmetric: bool = setting(False, "symmetric activation quantization", Q)
    weight_per_channel: bool = setting(False, "one weight range per output channel", Q)
    weight_observer: str = setting("minmax", "how weight ranges are set", Q, choices=registered(OBSERVERS))
    act_observer: str = setting("minmax", "how activation ranges are calibrated", Q, choices=registered(OBSERVERS))
    percentile: tuple = setting((99.99,), "percentile of the percentile observer", Q, sweep=True, unit="%",
                                check=percentile_range)
    act_dynamic: bool = setting(False, "per-token activation ranges taken at run time for Linear and matmul "
                                "inputs (conv inputs keep calibrated ranges)", Q)
    ignore: tuple = setting((), "leave the first and/or last matmul layer in float", Q,
                            choices=lambda: ("first", "last"))
    overrides: Optional[dict] = setting(None, "per-layer exceptions: a mapping (JSON on the command line) from "
                                        "layer-name regex, first or last to settings, e.g. {\"first\": "
                                        "{\"act_bits\": 16}}", Q, parse=parse_mapping)
    first_last_bits: Optional[int] = setting(None, "weight and activation bits of the first and last layer", Q,
                                             unit="bits", parse=parse_bits, check=bits_problem)
    quantize_residual: bool = setting(False, "also fake-quantize residual adds and concatenations", Q)
    fold_bn: bool = setting(True, "fold batch norm into the preceding conv", Q)
    bit_rounding: str = setting("none", "how trained bit-widths are rounded: none (continuous), round, discrete "
                                "({2,4,8}, nearest in log2), discrete_linear ({2,4,8}, nearest linearly: the "
                                "reference implementation's) or stochastic", Q, choices=lambda: BIT_ROUNDING)

    # quantization-aware training
    qat: bool = setting(False, "train the network's weights with its quantizers on (and its noise, with "
                        "--qat_emac) before each point is allocated and evaluated; one training per quantization "
                        "setting, kept in the run folder's qat/", T, keyed_when_set=True)
    qat_epochs: float = setting(1.0, "epochs of quantization-aware training", T, unit="epochs", check=positive,
                                applies="qat", keyed_when_set=True)
    qat_lr: float = setting(1e-3, "learning rate of quantization-aware training (SGD with Nesterov momentum, "
                            "cosine schedule)", T, check=in_range(0, 10, include_lo=False), applies="qat", keyed_when_set=True)
    qat_emac: Optional[float] = setting(None, "noise-aware training: keep the point's noise model on at this "
                                        "energy while the weights train (default: noise off)", T,
                                        unit="photons/MAC", parse=float, check=positive, applies="qat", keyed_when_set=True)
    qat_energies: bool = setting(False, "noise-aware training also trains per-layer log-energies toward "
                                 "--qat_emac (constrained loss, --lambd)", T, applies="qat", keyed_when_set=True)
    qat_init: Optional[str] = setting(None, "start quantization-aware training from this trained network (a run "
                                      "folder's qat/<key>.pt, e.g. W4A4 to warm-start W4A2); tensors that do not "
                                      "fit are left out and listed", T, parse=str, applies="qat",
                                      keyed_when_set=True)
    qat_val_samples: int = setting(2000, "training samples held out to keep the best epoch (0: keep the last)", T,
                                   unit="samples", check=non_negative, applies="qat", keyed_when_set=True)
    weight_learning: str = setting("none", "how weight ranges learn in quantization-aware training: none (re-taken "
                                   "from the weights at every step), ste or lsq (learned step size)", T,
                                   choices=lambda: RANGE_LEARNINGS[:3], keyed_when_set=True)
    act_learning: str = setting("none", "how activation ranges learn: none (calibrated, fixed), ste, lsq or "
                                "pact (learned clipping)", T, choices=lambda: RANGE_LEARNINGS, keyed_when_set=True)

    # analog noise
    noise_type: tuple = setting(("thermal",), "noise model(s)", N, sweep=True,
                                 choices=registered(NOISE_MODELS, "none"))
    e_mac: tuple = setting((10.0,), "energy per MAC of uniform allocations (used without --target_emac)", N,
                           sweep=True, unit="photons/MAC", check=positive)
    target_emac: Optional[tuple] = setting(None, "average energies per MAC to allocate toward", N, sweep=True,
                                           unit="photons/MAC", parse=float, check=positive)
    noise_sigma: Optional[float] = setting(None, "the noise model's constant (thermal sigma_t, weight sigma_w; "
                                           "default: the model's own, 0.01 and 0.1)", N, parse=float,
                                           check=positive)
    quantize_energy: bool = setting(False, "round energies to whole photons (straight-through)", N)
    record_snr: bool = setting(False, "record signal-to-noise ratios per layer and output channel", N)
    override_with_noise_bits: bool = setting(False, "also evaluate every point with its noise replaced by the "
                                             "equivalent quantizer (the noise bits)", N)
    photon_energy: float = setting(0.128, "photon energy (1550 nm: 0.128)", N, unit="aJ", check=positive)
    fan_in_groups: bool = setting(True, "a grouped or depthwise conv's noise fan-in D is k*k*C_in/groups "
                                  "(--no-fan_in_groups: k*k*C_in, the reference implementation's; docs/physics.md)",
                                  N, keyed_when_set=True)
    noise_bits_range: str = setting("span", "R_out of the noise bits: span (the calibrated pre-activation span) or "
                                    "relu (its positive part, the reference implementation's post-ReLU range)", N,
                                    choices=lambda: NOISE_BITS_RANGES, keyed_when_set=True)

    # allocation
    allocate: str = setting("energy", "what the allocation methods distribute: energy per MAC (toward --target_emac) "
                            "or weight bits (toward --target_weight_bits)", A, choices=lambda: QUANTITIES)
    allocation: tuple = setting(("uniform",), "allocation method(s)", A, sweep=True,
                                choices=registered(ALLOCATORS))
    granularity: tuple = setting(("layer",), "one energy per layer or per output channel", A, sweep=True,
                                 choices=lambda: GRANULARITIES)
    sensitivity: str = setting("fisher", "sensitivity estimate of the closed form: fisher (squared gradients) or "
                               "hessian (Hutchinson)", A, choices=lambda: ("fisher", "hessian"),
                               point=("closed_form",))
    sensitivity_batches: int = setting(8, "training batches the sensitivities of closed_form, hessian and greedy "
                                       "are measured on", A, unit="batches", check=at_least_one,
                                       point=("closed_form", "hessian", "greedy"))
    hutchinson_iters: int = setting(50, "at most this many Rademacher vectors per batch (Hutchinson)", A,
                                    check=at_least_one, point=("closed_form", "hessian"))
    hutchinson_tol: float = setting(0.01, "stop Hutchinson once the estimate changes by less than this (relative)", A,
                                    check=non_negative, point=("closed_form", "hessian"))
    greedy_epsilon: float = setting(0.01, "greedy: the largest accuracy drop (a fraction) a lowered layer may add "
                                    "up to", A, check=in_range(0, 1), point=("greedy",))
    greedy_factor: float = setting(4.0, "greedy: a lowered layer's energy is the high one divided by this", A,
                                   check=in_range(1, 1e6, include_lo=False), point=("greedy",))
    train_bitwidth: bool = setting(False, "train log2 bit-widths toward --target_weight_bits/--target_act_bits", A)
    train_qminmax: bool = setting(False, "train activation ranges (qmin/qmax)", A)
    constrained_loss: bool = setting(False, "penalty lambda*max(0, log E - log E_target) instead of lambda*log E", A, applies="training")
    lambd: tuple = setting((1.0,), "penalty weight lambda", A, sweep=True, check=in_range(0, 1e6))
    lr: tuple = setting((0.05,), "learning rate of trained allocations", A, sweep=True,
                       check=in_range(0, 100, include_lo=False))
    optimizer: str = setting("adam", "optimizer of trained allocations", A, choices=lambda: OPTIMIZERS, applies="training")
    train_batches: int = setting(100, "optimiser steps of trained allocations (at most, see --converge_window)", A,
                                 unit="batches", check=at_least_one, applies="training")
    lr_schedule: str = setting("cosine", "learning-rate schedule of trained allocations over --train_batches", A,
                               choices=lambda: SCHEDULES, applies="training")
    converge_window: int = setting(25, "stop training once the targets are met and the mean loss of the last N "
                                   "steps improved on the N before by less than --converge_tol (0: never)", A,
                                   unit="steps", check=non_negative, applies="training")
    converge_tol: float = setting(0.005, "relative loss improvement below which training has converged", A,
                                  check=in_range(0, 1, include_lo=False), applies="training")
    continuation: bool = setting(True, "train each target of a sweep from the solution of the next higher "
                                 "target (same allocation, granularity and settings)", A, applies="training")
    generated_labels: bool = setting(False, "train on the float model's predictions instead of the labels", A)
    checkpoint: bool = setting(False, "keep the best evaluated step that meets the constraint", A, applies="training")
    checkpoint_every: int = setting(25, "steps between checkpoint evaluations", A, unit="steps", check=at_least_one, applies="training")
    target_weight_bits: Optional[tuple] = setting(None, "average weight bits to train toward", A, sweep=True,
                                                  unit="bits", parse=float, check=in_range(1, 16))
    target_act_bits: Optional[tuple] = setting(None, "average activation bits to train toward", A, sweep=True,
                                               unit="bits", parse=float, check=in_range(1, 16))
    per_channel_bitwidth: bool = setting(False, "one trained weight bit-width per output channel", A, applies="training")
    weight_bits_only: bool = setting(False, "train weight bits only (activations stay fixed)", A, applies="training")
    max_act: bool = setting(False, "the activation-bits target applies to the largest feature map", A, applies="training")

    # evaluation and search
    mc_repeats: int = setting(1, "noise draws per evaluation (mean and 95% CI)", E, unit="draws",
                              check=at_least_one)
    compare_uniform: bool = setting(True, "also evaluate a uniform allocation at each non-uniform point's average "
                                    "energy", E)
    binary_search: bool = setting(False, "find the least energy reaching --target_acc / --acc_drop", E, point=False)
    target_acc: Optional[float] = setting(None, "iso-accuracy target: an accuracy to reach (a fraction)", E,
                                          parse=float, check=fraction, point=False)
    acc_drop: Optional[float] = setting(None, "iso-accuracy target: the reference accuracy (--target_reference) "
                                        "minus this (a fraction)", E, parse=float, check=fraction, point=False)
    target_reference: str = setting("float", "what --acc_drop is taken from: the float model or the quantized "
                                    "model without noise", E, choices=lambda: REFERENCES, point=False)
    curve_fit: str = setting("isotonic", "monotone fit of accuracy against log energy for iso-accuracy energies",
                             E, choices=lambda: FITS, point=False)
    bootstrap: int = setting(1000, "bootstrap replicates (test examples and noise draws) of every interval", E,
                             check=at_least_one)
    search_steps: int = setting(8, "bisection steps", E, check=at_least_one, point=False, applies="search")
    e_min: float = setting(0.01, "lower end of the energy search", E, unit="photons/MAC", check=positive, point=False, applies="search")
    e_max: float = setting(1000.0, "upper end of the energy search", E, unit="photons/MAC", check=positive, point=False, applies="search")

    # run
    run_name: Optional[str] = setting(None, "folder under --log_dir (default: <model>-<dataset>-<noise>)", R,
                                      record=False, parse=str)
    log_dir: str = setting("logs", "where run folders are made", R, record=False)
    overwrite: bool = setting(False, "start the run folder over (the old one is kept as <name>.old-<time>)", R,
                              record=False, switch=True)
    resume: bool = setting(False, "skip sweep points already in results.csv", R, record=False, switch=True)
    seed: tuple = setting((0,), "random seed(s): data order, noise draws", R, sweep=True,
                         check=in_range(0, 2 ** 32 - 1))
    device: Optional[str] = setting(None, "cpu or cuda[:N] (default: cuda when available)", R, record=False,
                                     parse=str)
    compile: bool = setting(False, "evaluate with torch.compile'd models (same results; faster on repeated "
                            "Monte-Carlo draws once compiled)", R, record=False)
    no_plot: bool = setting(False, "skip the plots (the card is still written; redraw with python main.py plot)",
                            R, record=False, switch=True)
    progress: bool = setting(True, "progress bars on terminals", R, record=False)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            check_field(f, getattr(self, f.name))
        self._check_combinations()
        if self.run_name is None:
            object.__setattr__(self, "run_name", f"{self.model}-{self.dataset}-{'-'.join(self.noise_type)}")
        if not self.log_dir.strip():
            raise ConfigError("--log_dir '': must name a folder", "log_dir")
        if "/" in self.run_name or self.run_name in ("", ".", ".."):
            raise ConfigError(f"--run_name {self.run_name!r}: must be a plain folder name", "run_name")
        for p in self.points():
            try:
                self.sim_config(p)
            except ConfigError as e:  # the library names fields; here they are flags
                raise ConfigError(flagged(str(e)), e.field) from None

    def _check_combinations(self) -> None:
        spec = MODELS.get(self.model)
        if spec.datasets and self.dataset not in spec.datasets:
            raise ConfigError(f"--model {self.model} runs on {', '.join(spec.datasets)}, not --dataset {self.dataset}",
                              "dataset")
        if self.data_path and not Path(self.data_path).is_dir():
            raise ConfigError(f"--data_path {self.data_path}: no such directory", "data_path")
        if self.checkpoint_path and not Path(self.checkpoint_path).exists() and self.model != "bert_base":
            raise ConfigError(f"--checkpoint_path {self.checkpoint_path}: no such file", "checkpoint_path")
        if self.train_bitwidth and not (self.target_weight_bits or self.target_act_bits):
            raise ConfigError("--train_bitwidth needs --target_weight_bits and/or --target_act_bits", "train_bitwidth")
        for a in self.allocation:
            if not set(self.granularity) & set(ALLOCATORS.get(a).granularities):
                raise ConfigError(f"--allocation {a} allocates per {' or '.join(ALLOCATORS.get(a).granularities)} "
                                  f"only, not --granularity {' '.join(self.granularity)}", "granularity")
        if self.allocate == "weight_bits" and not self.target_weight_bits:
            raise ConfigError("--allocate weight_bits distributes a bit budget: give --target_weight_bits", "allocate")
        if self.allocate == "energy" and any(a != "uniform" for a in self.allocation) and \
                self.noise_type == ("none",):
            raise ConfigError(f"--allocation {' '.join(self.allocation)} allocates energies: needs --noise_type "
                              "thermal, shot or weight", "allocation")
        if self.target_acc is not None and self.acc_drop is not None:
            raise ConfigError("give --target_acc or --acc_drop, not both", "target_acc")
        if self.binary_search and self.target_acc is None and self.acc_drop is None:
            raise ConfigError("--binary_search needs --target_acc (a fraction, e.g. 0.9) or --acc_drop", "binary_search")
        if self.qat_energies and self.qat_emac is None:
            raise ConfigError("--qat_energies trains energies toward --qat_emac: give it", "qat_energies")
        if self.qat_init is not None and not Path(self.qat_init).is_file():
            raise ConfigError(f"--qat_init {self.qat_init}: no such file", "qat_init")
        if self.qat_emac is not None and not self.qat:
            raise ConfigError("--qat_emac sets the noise of quantization-aware training: add --qat", "qat_emac")
        if self.e_min >= self.e_max:
            raise ConfigError(f"--e_min {self.e_min} must be below --e_max {self.e_max}", "e_min")
        if self.device is not None and not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"--device {self.device}: use cpu or cuda[:N]", "device")

    # -- points ---------------------------------------------------------------------
    def skipped(self) -> list[str]:
        """Method and granularity pairs of the sweep that the method cannot allocate (left out of the points)."""
        return [f"{a} per {g}" for a in self.allocation for g in self.granularity
                if a != "uniform" and g not in ALLOCATORS.get(a).granularities]

    def trains(self, p: Point) -> bool:
        """Whether the point trains anything (energies, bits or ranges)."""
        return p.allocation == "trained" or self.train_bitwidth or self.train_qminmax

    def trains_bits(self, p: Point) -> bool:
        """Whether the point's model needs learnable weight bit-widths."""
        return self.train_bitwidth or (self.allocate == "weight_bits" and p.allocation == "trained")

    def _effective(self, p: Point) -> Point:
        """Blank the values that cannot change this point's result (so that duplicates collapse)."""
        if p.noise_type == "none":
            p = dataclasses.replace(p, target_emac=None)
            if self.allocate == "energy":
                p = dataclasses.replace(p, allocation="uniform")
        if p.allocation == "uniform" or self.allocate == "weight_bits":
            p = dataclasses.replace(p, granularity="layer")
        if not self.trains(p):
            p = dataclasses.replace(p, lambd=None, lr=None)
        if not self.train_bitwidth and self.allocate == "energy":
            p = dataclasses.replace(p, target_weight_bits=None, target_act_bits=None)
        if "percentile" not in (self.weight_observer, self.act_observer):
            p = dataclasses.replace(p, percentile=None)
        return p

    def points(self) -> list[Point]:
        """Cartesian product of the sweep fields, duplicates removed, order kept."""
        grid = itertools.product(self.noise_type, self.allocation, self.granularity, self.target_emac or self.e_mac,
                                 self.weight_bits, self.act_bits, self.target_weight_bits or (None,),
                                 self.target_act_bits or (None,), self.lambd, self.lr, self.percentile, self.seed)
        points = (self._effective(Point(*values)) for values in grid)
        return list(dict.fromkeys(p for p in points
                                  if p.allocation == "uniform" or p.granularity in ALLOCATORS.get(p.allocation).granularities))

    def sim_config(self, p: Point) -> SimConfig:
        """The SimConfig of one point (raises ConfigError on an impossible combination)."""
        overrides = {}
        if self.first_last_bits is not None:
            overrides = {k: {"weight_bits": self.first_last_bits, "act_bits": self.first_last_bits}
                         for k in ("first", "last")}
        overrides.update(self.overrides or {})
        return SimConfig(
            weight_bits=p.weight_bits, act_bits=p.act_bits, weight_symmetric=self.weight_symmetric,
            act_symmetric=self.act_symmetric, weight_per_channel=self.weight_per_channel,
            weight_observer=self.weight_observer, act_observer=self.act_observer, percentile=p.percentile or 99.99,
            act_dynamic=self.act_dynamic, weight_learning=self.weight_learning, act_learning=self.act_learning,
            noise_type=p.noise_type, e_mac=p.target_emac or 1.0, noise_per_channel=p.granularity == "channel",
            quantize_energy=self.quantize_energy, noise_sigma=self.noise_sigma, train_bitwidth=self.trains_bits(p),
            weight_bits_only=self.weight_bits_only or self.allocate == "weight_bits",
            train_qminmax=self.train_qminmax,
            bit_rounding="round" if self.allocate == "weight_bits" and self.bit_rounding == "none" else self.bit_rounding,
            per_channel_bitwidth=self.per_channel_bitwidth, fold_bn=self.fold_bn,
            quantize_residual=self.quantize_residual, record_snr=self.record_snr, seed=p.seed,
            photon_energy_aj=self.photon_energy, fan_in_groups=self.fan_in_groups,
            noise_bits_range=self.noise_bits_range, ignore=tuple(self.ignore), overrides=overrides)

    # -- records --------------------------------------------------------------------
    def recorded(self) -> dict[str, Any]:
        """The run-wide settings written to every result row (the quantization card's confounders)."""
        return {f.name: _cell(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.metadata["record"] and not f.metadata["sweep"]}

    def recorded_for(self, p: Point) -> dict[str, Any]:
        """The recorded settings as point ``p``'s row holds them: those that cannot apply to it empty (None)."""
        fields = {f.name: f for f in dataclasses.fields(self)}

        def applies(f: dataclasses.Field) -> bool:
            point, kind = f.metadata["point"], f.metadata["applies"]
            if isinstance(point, tuple) and p.allocation not in point:
                return False
            return {"training": self.trains(p), "search": self.binary_search, "qat": self.qat}.get(kind, True)

        return {k: v if applies(fields[k]) else None for k, v in self.recorded().items()}

    def point_settings(self, method: str) -> dict[str, Any]:
        """The recorded settings that can change the result of a point of allocation ``method``: with the
        point's own values, its id."""
        fields = {f.name: f for f in dataclasses.fields(self)}

        def counts(k: str, v: Any) -> bool:
            f = fields[k]
            if f.metadata["keyed_when_set"] and v == _cell(f.default):
                return False
            point = f.metadata["point"]
            return method in point if isinstance(point, tuple) else point

        return {k: v for k, v in self.recorded().items() if counts(k, v)}

    def describe(self) -> dict[str, dict[str, Any]]:
        """Every field with its value, label, unit, group and help (written to config.json for the reports)."""
        return {f.name: {"value": _plain(getattr(self, f.name)), "label": f.metadata["label"] or
                         f.name.replace("_", " "), "unit": f.metadata["unit"], "group": f.metadata["group"],
                         "help": f.metadata["help"], "sweep": f.metadata["sweep"], "record": f.metadata["record"],
                         "order": i}
                for i, f in enumerate(dataclasses.fields(self))}

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ExperimentConfig":
        """Build from plain values (lists for sweeps); raises ConfigError naming unknown keys."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ConfigError(f"unknown settings {', '.join(unknown)}")
        return cls(**{k: coerce(fields[k], v) for k, v in d.items()})


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _cell(v: Any) -> Any:
    """A value as one results.csv cell (mappings as sorted JSON)."""
    return json.dumps(v, sort_keys=True) if isinstance(v, dict) else _plain(v)


def flagged(message: str) -> str:
    """A library message with the experiment's field names spelled as flags (``weight_bits`` -> ``--weight_bits``)."""
    names = sorted((f.name for f in dataclasses.fields(ExperimentConfig)), key=len, reverse=True)
    pattern = r"(?<![-\w])(" + "|".join(n for n in names if "_" in n) + r")(?!\w)"
    return re.sub(pattern, r"--\1", message)
