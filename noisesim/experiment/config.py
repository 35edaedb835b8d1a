"""The experiment configuration: one typed, validated dataclass behind ``main.py``.

Each concern owns its settings — :class:`noisesim.config.SimConfig` the simulation's,
``QATSettings`` quantization-aware training's, each allocation method its ``Settings`` dataclass,
``IsoAccuracySettings`` the iso-accuracy target's — and the experiment includes them
(``include_settings``); it declares only what is its own (model, data, the sweep's targets and
methods, evaluation, the run). Every field carries its help text, unit,
group, whether it sweeps and which points it reaches; from these the command-line parser
(``noisesim.experiment.cli``), the YAML loader, the sweep points, the settings columns of
results.csv, the points' ids and the settings table of the quantization card are all derived.
Validation happens here, once, whoever builds the config (parser, YAML, Python).

A sweep field holds a tuple; the experiment runs the Cartesian product of all of them (the
:class:`Point` s), one result row each. A setting that does not reach a point (no learning rate
without training, no percentile without the percentile observer, ...) is blank in its row, so
equivalent points collapse; a point's id hashes its row's settings that are not blank.
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

import noisesim.data.registry  # noqa: F401  (registers the data sets)
import noisesim.models.zoo  # noqa: F401  (registers the models)
from noisesim.allocate import METHOD_SETTINGS, GreedySettings
from noisesim.allocate.base import BIT_KINDS, QUANTITIES
from noisesim.config import ConfigError, SimConfig, bits_problem
from noisesim.registry import ALLOCATORS, DATASETS, MODELS
from noisesim.settings import (at_least_one, check_field, coerce, exposed, in_range, include_settings, parse_bits,
                               parse_mapping, positive, registered, setting)
from noisesim.stats.isoaccuracy import IsoAccuracySettings
from noisesim.train.qat import QATSettings

GRANULARITIES = ("layer", "channel")
GROUPS = ("model and data", "quantization", "quantization-aware training", "analog noise", "hardware", "allocation",
          "evaluation and search", "run")


@dataclass(frozen=True)
class Point:
    """One sweep point: a value for every sweep field (None where the setting does not reach it).

    A noisy point runs at ``e_mac`` (a uniform sweep's energy, from --e_mac) or allocates toward
    ``target_emac`` (from --target_emac): one of the two is set, never both."""

    noise_type: str
    allocation: str
    granularity: str
    e_mac: Optional[float]
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
    def noisy(self) -> bool:
        return self.noise_type != "none"

    @property
    def energy(self) -> Optional[float]:
        """The energy per MAC the point runs at or allocates toward (None without noise)."""
        return self.target_emac if self.target_emac is not None else self.e_mac

    @property
    def label(self) -> str:
        """How plots and tables name this point's allocation: 'uniform', 'trained per channel', ..."""
        return allocation_label(self.allocation, self.granularity)


def allocation_label(method: str, granularity: str) -> str:
    return "uniform" if method == "uniform" else f"{method.replace('_', ' ')} per {granularity}"


M, Q, T, N, H, A, E, R = GROUPS


@dataclass(frozen=True)
@include_settings(SimConfig, QATSettings, *METHOD_SETTINGS, IsoAccuracySettings,
                  defaults={"noise_type": ("thermal",), "seed": (0,)})
class ExperimentConfig:
    """What ``main.py`` runs. Field names are the command-line flags and the YAML keys; besides its own, it
    has every exposed setting of SimConfig, of quantization-aware training, of the allocation methods'
    Settings and of the iso-accuracy target."""

    # model and data
    model: str = setting("resnet20", "network", M, choices=registered(MODELS))
    dataset: str = setting("fashion_mnist", "data set", M, choices=registered(DATASETS), label="data set")
    data_path: Optional[str] = setting(None, "data folder (default for fashion_mnist: the Debian package's files)",
                                       M, record=False, parse=str)
    checkpoint_path: Optional[str] = setting(None, "float weights (.pt state_dict) to load instead of the default; "
                                             "for bert_base a Hugging Face folder or hub id", M, parse=str)
    model_options: Optional[dict] = setting(None, "architecture options as a mapping (JSON on the command line), "
                                            "e.g. {\"chokepoint\": 8, \"choke_channels\": 8} for vgg16", M,
                                            parse=parse_mapping)
    partial_checkpoint: bool = setting(False, "load only the --checkpoint_path tensors that fit the model (a "
                                       "narrowed layer starts afresh) and list the rest", M)
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
                                  check=in_range(0, 1), record=False)

    # quantization
    first_last_bits: Optional[int] = setting(None, "weight and activation bits of the first and last layer", Q,
                                             unit="bits", parse=parse_bits, check=bits_problem)

    # analog noise
    target_emac: Optional[tuple] = setting(None, "average energies per MAC to allocate toward", N, sweep=True,
                                           unit="photons/MAC", parse=float, check=positive, reaches="noisy")

    # allocation
    quantity: str = setting("energy", "what the allocation methods distribute: energy per MAC (toward --target_emac), "
                            "weight bits (toward --target_weight_bits), activation bits (toward "
                            "--target_act_bits) or weights_and_act_bits (both budgets)", A,
                            choices=lambda: QUANTITIES)
    allocation: tuple = setting(("uniform",), "allocation method(s)", A, sweep=True,
                                choices=registered(ALLOCATORS))
    granularity: tuple = setting(("layer",), "one energy per layer or per output channel", A, sweep=True,
                                 choices=lambda: GRANULARITIES)
    target_weight_bits: Optional[tuple] = setting(None, "average weight bits to train or allocate toward", A,
                                                  sweep=True, unit="bits", parse=float, check=in_range(1, 16),
                                                  reaches="bits")
    target_act_bits: Optional[tuple] = setting(None, "average activation bits to train or allocate toward", A,
                                               sweep=True,
                                               unit="bits", parse=float, check=in_range(1, 16), reaches="bits")
    generated_labels: bool = setting(False, "train (allocations and quantization-aware training) on the float "
                                     "model's predictions instead of the labels", A)

    # evaluation and search
    mc_repeats: int = setting(1, "noise draws per evaluation (mean and 95% CI)", E, unit="draws",
                              check=at_least_one, reaches="noisy")
    noise_as_quantizer: bool = setting(False, "also evaluate every point with its noise replaced by the "
                                       "equivalent quantizer (the noise bits)", E, reaches="noisy")
    compare_uniform: bool = setting(True, "also evaluate a uniform allocation at each non-uniform point's average "
                                    "energy", E, reaches="noisy")
    bootstrap: int = setting(1000, "bootstrap replicates (test examples and noise draws) of every interval", E,
                             check=at_least_one)

    # run
    run_name: Optional[str] = setting(None, "folder under --log_dir (default: <model>-<dataset>-<noise>)", R,
                                      record=False, parse=str)
    log_dir: str = setting("logs", "where run folders are made", R, record=False)
    overwrite: bool = setting(False, "start the run folder over (the old one is kept as <name>.old-<time>)", R,
                              record=False, switch=True)
    resume: bool = setting(False, "skip sweep points already in results.csv", R, record=False, switch=True)
    device: Optional[str] = setting(None, "cpu or cuda[:N] (default: cuda when available)", R, record=False,
                                     parse=str)
    compile: bool = setting(False, "evaluate with torch.compile'd models (same results; not faster on CPUs, where "
                            "the noise draw breaks the graph in every layer: benchmarks/overhead.py --compile)", R,
                            record=False)
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
        if self.train_bitwidth and not (self.target_weight_bits or self.target_act_bits):
            raise ConfigError("--train_bitwidth needs --target_weight_bits and/or --target_act_bits", "train_bitwidth")
        for a in self.allocation:
            if not set(self.granularity) & set(ALLOCATORS.get(a).granularities):
                raise ConfigError(f"--allocation {a} allocates per {' or '.join(ALLOCATORS.get(a).granularities)} "
                                  f"only, not --granularity {' '.join(self.granularity)}", "granularity")
        for a in self.allocation:
            if self.quantity not in ALLOCATORS.get(a).quantities:
                raise ConfigError(f"--allocation {a} allocates {' or '.join(ALLOCATORS.get(a).quantities)} only, not "
                                  f"--quantity {self.quantity}", "quantity")
        for kind in BIT_KINDS.get(self.quantity, ()):
            if not getattr(self, f"target_{kind}_bits"):
                raise ConfigError(f"--quantity {self.quantity} distributes a bit budget: give --target_{kind}_bits",
                                  "quantity")
            if getattr(self, f"{kind}_bits") == (None,):
                raise ConfigError(f"--quantity {self.quantity} allocates {kind} bits: give --{kind}_bits to start "
                                  "from", "quantity")
        if self.quantity == "energy" and any(a != "uniform" for a in self.allocation) and \
                self.noise_type == ("none",):
            raise ConfigError(f"--allocation {' '.join(self.allocation)} allocates energies: needs --noise_type "
                              "thermal, shot or weight", "allocation")
        for owner in (QATSettings, IsoAccuracySettings, GreedySettings):  # each checks its own combinations
            self.settings(owner)
        if self.device is not None and not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"--device {self.device}: use cpu or cuda[:N]", "device")

    def settings(self, owner: type, p: Optional[Point] = None) -> Any:
        """An instance of the included dataclass ``owner`` with this experiment's values (a sweep setting's from
        point ``p``); a field the experiment lacks (a plugin's own) keeps its default."""
        return owner(**{f.name: getattr(p, f.name) if f.metadata.get("sweep") else getattr(self, f.name)
                        for f in dataclasses.fields(owner) if hasattr(self, f.name)})

    def check_paths(self) -> None:
        """The files and folders the settings name exist here (checked where a run starts, not where a run
        folder's config is read back, e.g. by ``noisesim migrate``)."""
        if self.data_path and not Path(self.data_path).is_dir():
            raise ConfigError(f"--data_path {self.data_path}: no such directory", "data_path")
        if self.checkpoint_path and not Path(self.checkpoint_path).exists() and self.model != "bert_base":
            raise ConfigError(f"--checkpoint_path {self.checkpoint_path}: no such file", "checkpoint_path")
        if self.qat_init is not None and not Path(self.qat_init).is_file():
            raise ConfigError(f"--qat_init {self.qat_init}: no such file", "qat_init")

    # -- points ---------------------------------------------------------------------
    def skipped(self) -> list[str]:
        """Method and granularity pairs of the sweep that the method cannot allocate (left out of the points)."""
        return [f"{a} per {g}" for a in self.allocation for g in self.granularity
                if a != "uniform" and g not in ALLOCATORS.get(a).granularities]

    def trains(self, p: Point) -> bool:
        """Whether the point trains anything (energies, bits or ranges)."""
        return p.allocation in ("trained", "joint_trained") or self.train_bitwidth or self.train_qminmax

    def trains_bits(self, p: Point) -> bool:
        """Whether the point's model needs learnable weight bit-widths."""
        return self.train_bitwidth or (self.quantity != "energy" and p.allocation == "trained")

    @classmethod
    def method_settings(cls) -> set[str]:
        """The settings that belong to allocation methods (every included owner but SimConfig)."""
        return {f.name for owner in cls.owners if owner is not SimConfig for f in exposed(owner)}

    def reaches(self, name: str, p: Point) -> bool:
        """Whether setting ``name`` can change point ``p``'s result: its declared ``reaches``, and for an
        allocation method's setting, whether the point's method has it."""
        if name in self.method_settings() and name not in _fields(ALLOCATORS.get(p.allocation).Settings):
            return False
        return {"always": True, "noisy": p.noisy, "training": self.trains(p),
                "bits": self.train_bitwidth or self.quantity != "energy",
                "percentile": "percentile" in (self.weight_observer, self.act_observer), "qat": self.qat,
                "hardware": self.tile_rows is not None or self.adc_bits is not None,
                "adc": self.adc_bits is not None, "never": False}[self.__dataclass_fields__[name].metadata["reaches"]]

    def _effective(self, p: Point) -> Point:
        """The point as it runs: a noise-free point of an energy sweep is uniform, a uniform one is per layer,
        and every value whose setting does not reach it is blank."""
        if not p.noisy and self.quantity == "energy":
            p = dataclasses.replace(p, allocation="uniform")
        if p.allocation == "uniform" or self.quantity != "energy":
            p = dataclasses.replace(p, granularity="layer")
        return dataclasses.replace(p, **{k: None for k in _fields(Point) if not self.reaches(k, p)})

    def points(self) -> list[Point]:
        """Cartesian product of the sweep fields, duplicates removed, order kept."""
        energies = [(None, t) for t in self.target_emac] if self.target_emac else [(e, None) for e in self.e_mac]
        grid = itertools.product(self.noise_type, self.allocation, self.granularity, energies, self.weight_bits,
                                 self.act_bits, self.target_weight_bits or (None,), self.target_act_bits or (None,),
                                 self.lambd, self.lr, self.percentile, self.seed)
        points = (self._effective(Point(n, a, g, *e, *rest)) for n, a, g, e, *rest in grid)
        return list(dict.fromkeys(p for p in points if p.allocation == "uniform" or
                                  p.granularity in ALLOCATORS.get(p.allocation).granularities))

    def noise_free(self, p: Point) -> Point:
        """The noise-free uniform point of ``p``'s quantization setting (its clean reference)."""
        return dataclasses.replace(p, noise_type="none", allocation="uniform", granularity="layer", e_mac=None,
                                   target_emac=None, lambd=None, lr=None, target_weight_bits=None,
                                   target_act_bits=None)

    def clean_id(self, p: Point) -> str:
        """The name of the outcomes of ``p``'s clean reference (without quantization-aware training)."""
        return "clean-" + hashlib.sha1(self.point_id(self.noise_free(p)).encode()).hexdigest()[:8]

    def sim_config(self, p: Point) -> SimConfig:
        """The SimConfig of one point (raises ConfigError on an impossible combination)."""
        values = {f.name: getattr(self, f.name) for f in exposed(SimConfig) if not f.metadata["sweep"]}
        values.update(noise_type=p.noise_type, weight_bits=p.weight_bits, act_bits=p.act_bits, seed=p.seed)
        if p.percentile is not None:  # blank: no percentile observer, the default is never read
            values["percentile"] = p.percentile
        overrides = {}
        if self.first_last_bits is not None:
            overrides = {k: {"weight_bits": self.first_last_bits, "act_bits": self.first_last_bits}
                         for k in ("first", "last")}
        rounding = "round" if self.quantity != "energy" and self.bit_rounding == "none" else self.bit_rounding
        values.update(e_mac=p.energy or 1.0, noise_per_channel=p.granularity == "channel",
                      train_bitwidth=self.trains_bits(p),
                      weight_bits_only=self.weight_bits_only or self.quantity == "weight_bits",
                      act_bits_only=self.act_bits_only or self.quantity == "act_bits", bit_rounding=rounding,
                      overrides={**overrides, **self.overrides})
        return SimConfig(**values)

    # -- records --------------------------------------------------------------------
    def recorded(self) -> dict[str, Any]:
        """The run-wide settings written to every result row (the quantization card's confounders)."""
        return {f.name: _cell(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.metadata["record"] and not f.metadata["sweep"]}

    def recorded_for(self, p: Point) -> dict[str, Any]:
        """The recorded settings as point ``p``'s row holds them: blank (None) where they do not reach it."""
        return {k: v if self.reaches(k, p) else None for k, v in self.recorded().items()}

    def point_id(self, p: Point) -> str:
        """The point's id: the SHA-1 of its row's settings (its sweep values and the recorded settings) that
        are not blank, i.e. of every setting that reaches its computation."""
        cells = {k: v for k, v in {**dataclasses.asdict(p), **self.recorded_for(p)}.items() if v is not None}
        return hashlib.sha1(json.dumps(cells, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def describe(self) -> dict[str, dict[str, Any]]:
        """Every field with its value, label, unit, group and help (written to config.json for the reports)."""
        return {f.name: {"value": _plain(getattr(self, f.name)), "label": f.metadata["label"] or
                         f.name.replace("_", " "), "unit": f.metadata["unit"], "group": f.metadata["group"],
                         "help": f.metadata["help"], "sweep": f.metadata["sweep"], "record": f.metadata["record"],
                         "reaches": f.metadata["reaches"],
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


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


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
