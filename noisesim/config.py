"""Configuration as frozen, validated dataclasses with a JSON round trip.

``SimConfig`` is what users write; its keyword arguments carry the names of the command-line
flags (``weight_bits``, ``act_bits``, ``noise_type``, ``e_mac``, ...). Each instrumented layer
resolves it into per-concept configs (:class:`QuantConfig` for its weight and input
quantizers, :class:`NoiseConfig` for its noise model) after applying the per-layer exceptions
in ``overrides`` — data, never ``if model_name == ...``. Noise models and observers are looked
up by name in ``noisesim.registry``, so a newly registered one is accepted here at once.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from noisesim.registry import NOISE_MODELS, OBSERVERS
from noisesim.settings import (ConfigError, at_least_one, check_field, coerce, in_range, parse_bits, parse_mapping,
                               parse_optional_int, percentile_range, positive, registered, setting)

BIT_ROUNDING = ("none", "round", "discrete", "discrete_linear", "stochastic")
NOISE_BITS_RANGES = ("span", "relu")  # the R_out of the noise bits (docs/physics.md, "Conventions")
RANGE_LEARNING = ("ste", "lsq", "pact")  # how a learnable range learns (noisesim.quant.functional)
MIN_BITS, MAX_BITS = 2, 16
PHOTON_ENERGY_AJ = 0.128  # photon energy at 1550 nm, attojoules (h c / 1550 nm)
ADC_RANGES = ("minmax", "percentile", "full_scale")  # how an ADC's range is set (HardwareConfig)
WALDEN_FOM_FJ = 10.0  # fJ per conversion step: B. Murmann, "ADC Performance Survey 1997-2024" (docs/hardware.md)


# the groups of the simulation's settings in main.py's help (noisesim.experiment.config orders them)
Q, T, N, H, A, R = ("quantization", "quantization-aware training", "analog noise", "hardware", "allocation",
                    "run")


def pattern_problem(pattern: str) -> Optional[str]:
    """Why ``pattern`` names no layers (None for first, last or a valid regex)."""
    try:
        re.compile(pattern)
    except re.error as e:
        return f"is not first, last or a valid regex ({e})"
    return None


def bits_problem(bits: Optional[float]) -> Optional[str]:
    """Why ``bits`` is not a bit-width (None when it is one; None bits means float)."""
    if bits is not None and not MIN_BITS <= bits <= MAX_BITS:
        return f"is outside {MIN_BITS}-{MAX_BITS} bits (none for float)"
    return None


def _check_bits(name: str, bits: Optional[float]) -> None:
    problem = bits_problem(bits)
    if problem:
        raise ConfigError(f"{name} {bits} {problem}", name)


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}", name)


def noise_types() -> tuple[str, ...]:
    """The registered noise models and ``none``."""
    return NOISE_MODELS.names() + ("none",)


def noise_parts(kind: str) -> list[str]:
    """The noise models of a noise type: ``thermal+shot`` -> [thermal, shot] (several sources at once)."""
    return kind.split("+")


def _check_noise_type(kind: str) -> None:
    """``none``, a registered noise model, an import path to one, or a sum of those joined by ``+``."""
    parts = noise_parts(kind)
    for part in parts:
        if ":" not in part:  # a name
            _check_choice("noise_type", part, noise_types() if len(parts) == 1 else NOISE_MODELS.names())
            continue
        problem = NOISE_MODELS.problem(part)
        if problem is not None:
            raise ConfigError(f"noise_type {kind}: {problem}", "noise_type")
    if len(set(parts)) < len(parts):
        raise ConfigError(f"noise_type {kind} names a noise model twice", "noise_type")


def needs_quantizers(kind: str) -> bool:
    """Whether a noise type's scale is set by the quantizer ranges (any of its models' is)."""
    return kind != "none" and any(NOISE_MODELS.get(p).needs_quantizers for p in noise_parts(kind))


@dataclass(frozen=True)
class QuantConfig:
    """One fake quantizer.

    bits: 2-16, or None for no quantization. symmetric: signed levels around zero
    (zero point 0) instead of an affine [lo, hi] grid. per_channel: one range per
    channel. observer: how the range is calibrated (a name in ``noisesim.registry.OBSERVERS``).
    learnable_range: the range (lo, hi) becomes trainable, learning by ``learning`` (``ste``, ``lsq``
    with LSQ's gradient scaling, or ``pact``'s clipping gradient). learnable_bits: log2(bits)
    becomes trainable, rounded by ``bit_rounding``; ``per_channel_bits`` gives each
    channel its own bit-width. dynamic: no calibrated range; every row (token) of each input
    is quantized over its own range at run time (per-token dynamic quantization).
    """

    bits: Optional[float] = 8
    symmetric: bool = False
    per_channel: bool = False
    observer: str = "minmax"
    percentile: float = 99.99
    ema_decay: float = 0.1
    learnable_range: bool = False
    learning: str = "ste"
    learnable_bits: bool = False
    bit_rounding: str = "round"
    per_channel_bits: bool = False
    dynamic: bool = False

    def __post_init__(self):
        _check_bits("bits", self.bits)
        if self.dynamic and (self.learnable_range or self.per_channel):
            raise ConfigError("a dynamic quantizer takes its ranges from each input: no learnable or per-channel "
                              "range", "dynamic")
        _check_choice("observer", self.observer, OBSERVERS.names())
        _check_choice("bit_rounding", self.bit_rounding, BIT_ROUNDING)
        _check_choice("learning", self.learning, RANGE_LEARNING)
        if not 50 < self.percentile <= 100:
            raise ConfigError(f"percentile {self.percentile} is outside (50, 100]", "percentile")
        if self.learnable_bits and self.bits is None:
            raise ConfigError("learnable bits need a starting bit-width, got bits=None", "bits")


@dataclass(frozen=True)
class NoiseConfig:
    """One analog noise model (see docs/physics.md).

    kind: a registered noise model (``thermal``, ``shot``, ``weight``, ...), several joined by ``+``
    (``thermal+shot``: independent sources on the same energy), or ``none``.
    e_mac: energy per MAC in photons (> 0). per_channel: one energy per output channel.
    learnable: the log-energy trains. quantize_energy: round E to whole repeats/photons
    (straight-through). sigma: the model's noise constant (sigma_t for thermal, sigma_w for
    weight noise); None takes the model's default. seed, key: the layer draws the noise stream of
    (seed, key), key being its name, so layers and seeds never share a stream (seed None: drawn from
    the global torch RNG). record_snr: accumulate signal and noise power.
    as_quantizer: the noise replaced by its equivalent uniform quantizer (the noise bits).
    """

    kind: str = "none"
    e_mac: float = 10.0
    per_channel: bool = False
    learnable: bool = False
    quantize_energy: bool = False
    sigma: Optional[float] = None
    seed: Optional[int] = None
    key: str = ""
    record_snr: bool = False
    as_quantizer: bool = False
    bits_range: str = "span"

    def __post_init__(self):
        _check_noise_type(self.kind)
        _check_choice("noise_bits_range", self.bits_range, NOISE_BITS_RANGES)
        if not self.e_mac > 0:
            raise ConfigError(f"e_mac must be > 0 photons/MAC, got {self.e_mac}", "e_mac")
        if self.sigma is not None and not self.sigma > 0:
            raise ConfigError(f"noise_sigma must be > 0, got {self.sigma}", "noise_sigma")
        if self.sigma is not None and "+" in self.kind:
            raise ConfigError(f"noise_sigma sets one model's constant; {self.kind} sums several, each with its "
                              "own default", "noise_sigma")


@dataclass(frozen=True)
class HardwareConfig:
    """How one layer's matmul is laid out on the hardware (docs/hardware.md).

    tile_rows: N, the rows of one array: a fan-in D is computed as ceil(D / N) partial sums over
    consecutive slices of the fan-in, each with its own noise, then added digitally (None: one array
    holds the whole fan-in). adc_bits: every partial sum is read out by a symmetric ADC of that many
    bits over [-r, r] (None: no ADC). adc_range: how r is set, ``minmax`` / ``percentile`` (observed on
    the partial sums during calibration, noise off) or ``full_scale`` (the bound N max|w| max|x| of the
    quantizer ranges). percentile: the percentile observer's.
    """

    tile_rows: Optional[int] = None
    adc_bits: Optional[float] = None
    adc_range: str = "minmax"
    percentile: float = 99.99

    def __post_init__(self):
        if self.tile_rows is not None and self.tile_rows < 1:
            raise ConfigError(f"tile_rows must be >= 1 (or none), got {self.tile_rows}", "tile_rows")
        _check_bits("adc_bits", self.adc_bits)
        _check_choice("adc_range", self.adc_range, ADC_RANGES)

    @property
    def active(self) -> bool:
        """Whether the layer leaves the plain one-array, no-ADC path."""
        return self.tile_rows is not None or self.adc_bits is not None


@dataclass(frozen=True)
class SimConfig:
    """Everything ``noisesim.prepare`` needs; field names follow the command-line flags.

    Quantization: weight_bits / act_bits (None = float), *_symmetric, weight_per_channel,
    *_observer, percentile, act_dynamic (per-token ranges taken at run time for the inputs of
    Linear layers and matmuls; conv inputs keep calibrated ranges). Noise: noise_type, e_mac (photons/MAC), noise_per_channel,
    quantize_energy, noise_sigma (None: the model's default constant). Training switches:
    train_noise (learnable log-energies), train_bitwidth (learnable log2 bits;
    weight_bits_only keeps activations fixed, act_bits_only the weights), train_qminmax (learnable activation ranges),
    weight_learning / act_learning (``none``, or how learnable weight / activation ranges learn:
    ``ste``, ``lsq``, and for activations ``pact``; for quantization-aware training),
    bit_rounding (how learnt bits are rounded: none, round, discrete {2,4,8}, stochastic),
    per_channel_bitwidth. Structure: fold_bn, quantize_residual (fake-quantize residual adds
    and concatenations), ignore (layer-name regexes, or ``first``/``last``, left in float),
    overrides (regex or ``first``/``last`` -> dict of these fields), seed, record_snr,
    noise_as_quantizer, photon_energy (aJ). Conventions (docs/physics.md): fan_in_groups (a grouped conv's
    noise fan-in is k_h k_w C_in / groups; False: k_h k_w C_in, the reference implementation's),
    noise_bits_range (``span`` or ``relu``, see NoiseConfig.bits_range).
    """

    weight_bits: Optional[float] = setting(8, "weight bits (none: float)", Q, sweep=True, unit="bits",
                                           parse=parse_bits, check=bits_problem)
    act_bits: Optional[float] = setting(8, "activation (input) bits (none: float)", Q, sweep=True, unit="bits",
                                        parse=parse_bits, check=bits_problem)
    weight_symmetric: bool = setting(True, "symmetric weight quantization (zero point 0)", Q)
    act_symmetric: bool = setting(False, "symmetric activation quantization", Q)
    weight_per_channel: bool = setting(False, "one weight range per output channel", Q)
    weight_observer: str = setting("minmax", "how weight ranges are set", Q, choices=registered(OBSERVERS))
    act_observer: str = setting("minmax", "how activation ranges are calibrated", Q, choices=registered(OBSERVERS))
    percentile: float = setting(99.99, "percentile of the percentile observer", Q, sweep=True, unit="%",
                                check=percentile_range, reaches="percentile")
    act_dynamic: bool = setting(False, "per-token activation ranges taken at run time for Linear and matmul "
                                "inputs (conv inputs keep calibrated ranges)", Q)
    noise_type: str = setting("none", "noise model(s); several sources at once are joined by + (thermal+shot: "
                              "independent variances add, each source at the same energy)", N, sweep=True,
                              choices=registered(NOISE_MODELS, "none", sums=True))
    e_mac: float = setting(10.0, "energy per MAC of uniform allocations (used without --target_emac)", N,
                           sweep=True, unit="photons/MAC", check=positive, reaches="noisy")
    noise_per_channel: bool = setting(False, "one energy per output channel", N, expose=False)
    quantize_energy: bool = setting(False, "round energies to whole photons (straight-through)", N, reaches="noisy")
    noise_sigma: Optional[float] = setting(None, "the noise model's constant (thermal sigma_t, weight sigma_w; "
                                           "default: the model's own, 0.01 and 0.1)", N, parse=float,
                                           check=positive, reaches="noisy")
    train_noise: bool = setting(False, "learnable log-energies", A, expose=False)
    train_bitwidth: bool = setting(False, "train log2 bit-widths toward --target_weight_bits/--target_act_bits", A)
    weight_bits_only: bool = setting(False, "train weight bits only (activations stay fixed)", A, reaches="bits")
    act_bits_only: bool = setting(False, "train activation bits only (weights stay fixed)", A, reaches="bits")
    train_qminmax: bool = setting(False, "train activation ranges (qmin/qmax)", A)
    weight_learning: str = setting("none", "how weight ranges learn in quantization-aware training: none (re-taken "
                                   "from the weights at every step), ste or lsq (learned step size)", T,
                                   choices=lambda: ("none",) + RANGE_LEARNING[:2])
    act_learning: str = setting("none", "how activation ranges learn: none (calibrated, fixed), ste, lsq or "
                                "pact (learned clipping)", T, choices=lambda: ("none",) + RANGE_LEARNING)
    bit_rounding: str = setting("none", "how trained bit-widths are rounded: none (continuous), round, discrete "
                                "({2,4,8}, nearest in log2), discrete_linear ({2,4,8}, nearest linearly: the "
                                "reference implementation's) or stochastic", Q, choices=lambda: BIT_ROUNDING,
                                reaches="bits")
    per_channel_bitwidth: bool = setting(False, "one trained weight bit-width per output channel", A,
                                         reaches="bits")
    fold_bn: bool = setting(True, "fold batch norm into the preceding conv", Q)
    quantize_residual: bool = setting(False, "also fake-quantize residual adds and concatenations", Q)
    record_snr: bool = setting(False, "record signal-to-noise ratios per layer and output channel", N,
                               reaches="noisy")
    noise_as_quantizer: bool = setting(False, "every noise model replaced by its equivalent uniform quantizer "
                                       "(the noise bits)", N, expose=False)
    seed: Optional[int] = setting(None, "random seed(s): data order, noise draws", R, sweep=True, parse=int,
                                  check=in_range(0, 2 ** 32 - 1))
    photon_energy: float = setting(PHOTON_ENERGY_AJ, "photon energy (1550 nm: 0.128)", N, unit="aJ", check=positive,
                                   reaches="noisy")
    fan_in_groups: bool = setting(True, "a grouped or depthwise conv's noise fan-in D is k*k*C_in/groups "
                                  "(--no-fan_in_groups: k*k*C_in, the reference implementation's; docs/physics.md)",
                                  N, reaches="noisy")
    noise_bits_range: str = setting("span", "R_out of the noise bits: span (the calibrated pre-activation span) or "
                                    "relu (its positive part, the reference implementation's post-ReLU range)", N,
                                    choices=lambda: NOISE_BITS_RANGES, reaches="noisy")
    tile_rows: Optional[int] = setting(None, "rows N of one array: a fan-in D is split into ceil(D/N) analog partial "
                                       "sums, each with its own noise, added digitally (none: one array holds "
                                       "every fan-in)", H, unit="rows", parse=parse_optional_int, check=at_least_one)
    adc_bits: Optional[float] = setting(None, "bits of the ADC that reads out every partial sum (none: no ADC)", H,
                                        unit="bits", parse=parse_bits, check=bits_problem)
    adc_range: str = setting("minmax", "how the ADC range [-r, r] is set: minmax or percentile of the partial sums "
                             "at calibration (noise off), or full_scale (N max|w| max|x|)", H,
                             choices=lambda: ADC_RANGES, reaches="adc")
    adc_fom: float = setting(WALDEN_FOM_FJ, "ADC energy per conversion step (Walden figure of merit; one conversion "
                             "costs adc_fom * 2^adc_bits)", H, unit="fJ", check=positive, reaches="adc")
    dac_fom: float = setting(WALDEN_FOM_FJ, "DAC energy per conversion step (one conversion per input value costs "
                             "dac_fom * 2^act_bits)", H, unit="fJ", check=positive, reaches="hardware")
    ignore: tuple[str, ...] = setting((), "layers left in float: first, last or layer-name regexes", Q, parse=str,
                                      check=pattern_problem)
    overrides: dict[str, dict[str, Any]] = setting({}, "per-layer exceptions: a mapping (JSON on the command line) "
                                                   "from layer-name regex, first or last to settings, e.g. "
                                                   "{\"first\": {\"act_bits\": 16}}", Q, parse=parse_mapping)

    def __post_init__(self):
        _check_bits("weight_bits", self.weight_bits)
        _check_bits("act_bits", self.act_bits)
        _check_noise_type(self.noise_type)
        _check_choice("bit_rounding", self.bit_rounding, BIT_ROUNDING)
        if not self.e_mac > 0:
            raise ConfigError(f"e_mac must be > 0 photons/MAC, got {self.e_mac}", "e_mac")
        if needs_quantizers(self.noise_type) and (self.weight_bits is None or self.act_bits is None):
            raise ConfigError(f"{self.noise_type} noise (noise_type {self.noise_type}) needs weight_bits and "
                              "act_bits: its scale is set by the quantizer ranges", "noise_type")
        if self.weight_bits_only and self.act_bits_only:
            raise ConfigError("weight_bits_only and act_bits_only exclude each other", "act_bits_only")
        start = "act_bits" if self.act_bits_only else "weight_bits"
        if self.train_bitwidth and getattr(self, start) is None:
            raise ConfigError(f"train_bitwidth needs {start} to start from", "train_bitwidth")
        _check_choice("weight_learning", self.weight_learning, ("none",) + RANGE_LEARNING[:2])
        _check_choice("act_learning", self.act_learning, ("none",) + RANGE_LEARNING)
        if self.train_qminmax and self.act_observer == "percentile":
            raise ConfigError("train_qminmax learns the ranges the percentile act_observer would set; use minmax, "
                              "ema, aciq or mse", "train_qminmax")
        if self.adc_bits is not None and self.adc_range == "full_scale" and (self.act_bits is None or self.act_dynamic):
            raise ConfigError("adc_range full_scale builds the range from the calibrated input range: it needs "
                              "act_bits (and no act_dynamic); or use adc_range minmax", "adc_range")
        if self.photon_energy <= 0:
            raise ConfigError(f"photon_energy must be > 0, got {self.photon_energy}", "photon_energy")
        object.__setattr__(self, "ignore", tuple(self.ignore))
        names = {f.name for f in dataclasses.fields(self)} - {"overrides", "ignore"}
        for pattern, values in self.overrides.items():
            _compile(pattern)
            unknown = set(values) - names
            if unknown:
                raise ConfigError(f"override {pattern!r} sets unknown fields {sorted(unknown)}", "overrides")
        for pattern in self.ignore:
            _compile(pattern)
        for prefix, build in (("weight_", self.weight_quant), ("act_", self.act_quant), ("", self.noise),
                              ("", self.hardware)):
            try:  # the per-concept configs validate what is theirs; name the field as SimConfig does
                build()
            except ConfigError as e:
                name = f"{prefix}{e.field}"
                if name in names:
                    raise ConfigError(f"{prefix}{e}", name) from None
                raise

    # -- per-layer resolution -------------------------------------------------
    def for_layer(self, name: str, aliases: tuple[str, ...] = ()) -> "SimConfig":
        """This config with every override whose pattern matches ``name`` (or an alias) applied in order."""
        cfg = self
        for pattern, values in self.overrides.items():
            if _matches(pattern, name, aliases):
                cfg = dataclasses.replace(cfg, **values)
        return cfg

    def ignores(self, name: str, aliases: tuple[str, ...] = ()) -> bool:
        return any(_matches(p, name, aliases) for p in self.ignore)

    def weight_quant(self) -> QuantConfig:
        return QuantConfig(bits=self.weight_bits, symmetric=self.weight_symmetric,
                           per_channel=self.weight_per_channel, observer=self.weight_observer,
                           percentile=self.percentile,
                           learnable_range=self.weight_learning != "none" and self.weight_bits is not None,
                           learning="ste" if self.weight_learning == "none" else self.weight_learning,
                           learnable_bits=(self.train_bitwidth and not self.act_bits_only
                                           and self.weight_bits is not None),
                           bit_rounding=self.bit_rounding, per_channel_bits=self.per_channel_bitwidth)

    def act_quant(self, dynamic: bool = True) -> QuantConfig:
        """The input quantizer; ``dynamic=False`` for inputs that cannot take per-token ranges (conv)."""
        learn_bits = self.train_bitwidth and not self.weight_bits_only and self.act_bits is not None
        dynamic = dynamic and self.act_dynamic
        return QuantConfig(bits=self.act_bits, symmetric=self.act_symmetric, per_channel=False,
                           observer=self.act_observer, percentile=self.percentile,
                           learnable_range=(self.train_qminmax or self.act_learning != "none")
                           and self.act_bits is not None and not dynamic,
                           learning="ste" if self.act_learning == "none" else self.act_learning,
                           learnable_bits=learn_bits, bit_rounding=self.bit_rounding, dynamic=dynamic)

    def noise(self, key: str = "") -> NoiseConfig:
        """The noise model of the layer named ``key`` (which names its noise stream)."""
        return NoiseConfig(kind=self.noise_type, e_mac=self.e_mac, per_channel=self.noise_per_channel,
                           learnable=self.train_noise, quantize_energy=self.quantize_energy,
                           sigma=self.noise_sigma, seed=self.seed, key=key,
                           record_snr=self.record_snr, as_quantizer=self.noise_as_quantizer,
                           bits_range=self.noise_bits_range)

    def hardware(self) -> HardwareConfig:
        """The layer's array size and ADC."""
        return HardwareConfig(tile_rows=self.tile_rows, adc_bits=self.adc_bits, adc_range=self.adc_range,
                              percentile=self.percentile)

    # -- JSON -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ignore"] = list(self.ignore)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SimConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown SimConfig fields {sorted(unknown)}")
        d = dict(d)
        if "ignore" in d:
            d["ignore"] = tuple(d["ignore"])
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "SimConfig":
        return cls.from_dict(json.loads(text))


HARDWARE_PRESETS = Path(__file__).resolve().parent / "configs" / "hardware"
PRESET_CONSTANTS = ("tile_rows", "adc_bits", "adc_fom", "dac_fom")  # every hardware preset states these


def hardware_presets() -> list[str]:
    """The names of the shipped hardware presets (``noisesim/configs/hardware/``)."""
    return sorted(p.stem for p in HARDWARE_PRESETS.glob("*.yaml"))


def hardware_preset(name: str) -> dict[str, Any]:
    """The settings of a hardware preset: a shipped name (``photonic``, ``imc``) or a YAML file of SimConfig
    settings, checked (every one of ``PRESET_CONSTANTS`` given, every value valid), e.g.
    ``SimConfig(**hardware_preset("photonic"), weight_bits=8)``. Raises ConfigError naming the problem."""
    import yaml

    path = HARDWARE_PRESETS / f"{name}.yaml"
    path = path if path.is_file() else Path(name)
    if not path.is_file():
        raise ConfigError(f"{name}: no such preset or file; choose from {', '.join(hardware_presets())} or give a "
                          "YAML file", "hardware")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})", "hardware") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings to values", "hardware")
    fields = {f.name: f for f in dataclasses.fields(SimConfig)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{path}: unknown settings {', '.join(unknown)}", "hardware")
    missing = [k for k in PRESET_CONSTANTS if data.get(k) is None]
    if missing:
        raise ConfigError(f"{path}: no value for {', '.join(missing)} (a preset states {', '.join(PRESET_CONSTANTS)})",
                          "hardware")
    for key, value in data.items():
        try:
            check_field(fields[key], coerce(fields[key], value))
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{path}: {key}: {e}", "hardware") from None
        if fields[key].metadata["parse"] is float and not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: {key}: {value!r} is not a number", "hardware")
    SimConfig(**data)  # the combination is valid too
    return data


def _compile(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"layer pattern {pattern!r} is not a valid regex: {e}", "overrides") from None


def _matches(pattern: str, name: str, aliases: tuple[str, ...]) -> bool:
    return pattern in aliases or re.fullmatch(pattern, name) is not None
