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
from dataclasses import dataclass, field
from typing import Any, Optional

from noisesim.registry import NOISE_MODELS, OBSERVERS

BIT_ROUNDING = ("none", "round", "discrete", "discrete_linear", "stochastic")
NOISE_BITS_RANGES = ("span", "relu")  # the R_out of the noise bits (docs/physics.md, "Conventions")
RANGE_LEARNING = ("ste", "lsq", "pact")  # how a learnable range learns (noisesim.quant.functional)
MIN_BITS, MAX_BITS = 2, 16
PHOTON_ENERGY_AJ = 0.128  # photon energy at 1550 nm, attojoules (h c / 1550 nm)


class ConfigError(ValueError):
    """An invalid configuration value; the message names the field and what is allowed.

    ``field`` is the offending field's name (the command line turns it into its flag)."""

    def __init__(self, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.field = field


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


def _check_noise_type(kind: str) -> None:
    """``none``, a registered noise model or an import path to one."""
    if ":" not in kind:  # a name
        _check_choice("noise_type", kind, noise_types())
        return
    problem = NOISE_MODELS.problem(kind)
    if problem is not None:
        raise ConfigError(f"noise_type {kind}: {problem}", "noise_type")


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

    kind: a registered noise model (``thermal``, ``shot``, ``weight``, ...) or ``none``.
    e_mac: energy per MAC in photons (> 0). per_channel: one energy per output channel.
    learnable: the log-energy trains. quantize_energy: round E to whole repeats/photons
    (straight-through). sigma: the model's noise constant (sigma_t for thermal, sigma_w for
    weight noise); None takes the model's default. seed, key: the layer draws the noise stream of
    (seed, key), key being its name, so layers and seeds never share a stream (seed None: drawn from
    the global torch RNG). record_snr: accumulate signal and noise power.
    replace_with_quantizer: use the equivalent uniform quantizer (noise bits) instead of noise.
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
    replace_with_quantizer: bool = False
    bits_range: str = "span"

    def __post_init__(self):
        _check_noise_type(self.kind)
        _check_choice("noise_bits_range", self.bits_range, NOISE_BITS_RANGES)
        if not self.e_mac > 0:
            raise ConfigError(f"e_mac must be > 0 photons/MAC, got {self.e_mac}", "e_mac")
        if self.sigma is not None and not self.sigma > 0:
            raise ConfigError(f"noise_sigma must be > 0, got {self.sigma}", "noise_sigma")


@dataclass(frozen=True)
class SimConfig:
    """Everything ``noisesim.prepare`` needs; field names follow the command-line flags.

    Quantization: weight_bits / act_bits (None = float), *_symmetric, weight_per_channel,
    *_observer, percentile, act_dynamic (per-token ranges taken at run time for the inputs of
    Linear layers and matmuls; conv inputs keep calibrated ranges). Noise: noise_type, e_mac (photons/MAC), noise_per_channel,
    quantize_energy, noise_sigma (None: the model's default constant). Training switches:
    train_noise (learnable log-energies), train_bitwidth (learnable log2 bits;
    weight_bits_only keeps activations fixed), train_qminmax (learnable activation ranges),
    weight_learning / act_learning (``none``, or how learnable weight / activation ranges learn:
    ``ste``, ``lsq``, and for activations ``pact``; for quantization-aware training),
    bit_rounding (how learnt bits are rounded: none, round, discrete {2,4,8}, stochastic),
    per_channel_bitwidth. Structure: fold_bn, quantize_residual (fake-quantize residual adds
    and concatenations), ignore (layer-name regexes, or ``first``/``last``, left in float),
    overrides (regex or ``first``/``last`` -> dict of these fields), seed, record_snr,
    override_with_noise_bits, photon_energy_aj. Conventions (docs/physics.md): fan_in_groups (a grouped conv's
    noise fan-in is k_h k_w C_in / groups; False: k_h k_w C_in, the reference implementation's),
    noise_bits_range (``span`` or ``relu``, see NoiseConfig.bits_range).
    """

    weight_bits: Optional[float] = 8
    act_bits: Optional[float] = 8
    weight_symmetric: bool = True
    act_symmetric: bool = False
    weight_per_channel: bool = False
    weight_observer: str = "minmax"
    act_observer: str = "minmax"
    percentile: float = 99.99
    act_dynamic: bool = False
    noise_type: str = "none"
    e_mac: float = 10.0
    noise_per_channel: bool = False
    quantize_energy: bool = False
    noise_sigma: Optional[float] = None
    train_noise: bool = False
    train_bitwidth: bool = False
    weight_bits_only: bool = False
    train_qminmax: bool = False
    weight_learning: str = "none"
    act_learning: str = "none"
    bit_rounding: str = "none"
    per_channel_bitwidth: bool = False
    fold_bn: bool = True
    quantize_residual: bool = False
    record_snr: bool = False
    override_with_noise_bits: bool = False
    seed: Optional[int] = None
    photon_energy_aj: float = PHOTON_ENERGY_AJ
    fan_in_groups: bool = True
    noise_bits_range: str = "span"
    ignore: tuple[str, ...] = ()
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self):
        _check_bits("weight_bits", self.weight_bits)
        _check_bits("act_bits", self.act_bits)
        _check_noise_type(self.noise_type)
        _check_choice("bit_rounding", self.bit_rounding, BIT_ROUNDING)
        if not self.e_mac > 0:
            raise ConfigError(f"e_mac must be > 0 photons/MAC, got {self.e_mac}", "e_mac")
        needs_quant = self.noise_type != "none" and NOISE_MODELS.get(self.noise_type).needs_quantizers
        if needs_quant and (self.weight_bits is None or self.act_bits is None):
            raise ConfigError(f"{self.noise_type} noise (noise_type {self.noise_type}) needs weight_bits and "
                              "act_bits: its scale is set by the quantizer ranges", "noise_type")
        if self.train_bitwidth and self.weight_bits is None:
            raise ConfigError("train_bitwidth needs weight_bits to start from", "train_bitwidth")
        _check_choice("weight_learning", self.weight_learning, ("none",) + RANGE_LEARNING[:2])
        _check_choice("act_learning", self.act_learning, ("none",) + RANGE_LEARNING)
        if self.train_qminmax and self.act_observer == "percentile":
            raise ConfigError("train_qminmax learns the ranges the percentile act_observer would set; use minmax, "
                              "ema, aciq or mse", "train_qminmax")
        if self.photon_energy_aj <= 0:
            raise ConfigError(f"photon_energy_aj must be > 0, got {self.photon_energy_aj}", "photon_energy_aj")
        object.__setattr__(self, "ignore", tuple(self.ignore))
        names = {f.name for f in dataclasses.fields(self)} - {"overrides", "ignore"}
        for pattern, values in self.overrides.items():
            _compile(pattern)
            unknown = set(values) - names
            if unknown:
                raise ConfigError(f"override {pattern!r} sets unknown fields {sorted(unknown)}", "overrides")
        for pattern in self.ignore:
            _compile(pattern)
        for prefix, build in (("weight_", self.weight_quant), ("act_", self.act_quant), ("", self.noise)):
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
                           learnable_bits=self.train_bitwidth and self.weight_bits is not None,
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
                           record_snr=self.record_snr, replace_with_quantizer=self.override_with_noise_bits,
                           bits_range=self.noise_bits_range)

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


def _compile(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"layer pattern {pattern!r} is not a valid regex: {e}", "overrides") from None


def _matches(pattern: str, name: str, aliases: tuple[str, ...]) -> bool:
    return pattern in aliases or re.fullmatch(pattern, name) is not None
