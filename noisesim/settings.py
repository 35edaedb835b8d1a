"""How a setting is declared, parsed and checked, wherever it lives.

Each concern owns its settings: :class:`noisesim.config.SimConfig` the simulation's, each allocation
method its ``Settings`` dataclass. ``setting(...)`` makes a dataclass field that carries its help
text, unit, group, parser, check and the points it reaches; ``include_settings`` lifts the exposed
ones into the experiment's flat configuration, from which the flags, YAML keys, results columns
and card rows are derived. ``coerce`` turns a YAML / Python value into the field's shape and
``check_field`` validates it. The value checks return why a value is wrong, or None.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import field
from typing import Any, Callable, Optional


class ConfigError(ValueError):
    """An invalid configuration value; the message names the field and what is allowed.

    ``field`` is the offending field's name (the command line turns it into its flag)."""

    def __init__(self, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.field = field


# -- value checks: each returns why a value is wrong, or None -------------------------
def positive(v: float) -> Optional[str]:
    return None if v is not None and math.isfinite(v) and v > 0 else "must be > 0 and finite"


def at_least_one(v: int) -> Optional[str]:
    return None if v >= 1 else "must be >= 1"


def non_negative(v: float) -> Optional[str]:
    return None if math.isfinite(v) and v >= 0 else "must be >= 0 and finite"


def fraction(v: float) -> Optional[str]:
    return None if 0 < v <= 1 else "must be a fraction in (0, 1]"


def in_range(lo: float, hi: float, include_lo: bool = True) -> Callable[[float], Optional[str]]:
    """A check that ``v`` lies in [lo, hi] (or (lo, hi] when not ``include_lo``) and is finite."""
    def check(v: float) -> Optional[str]:
        inside = math.isfinite(v) and (v >= lo if include_lo else v > lo) and v <= hi
        return None if inside else f"must be in {'[' if include_lo else '('}{lo:g}, {hi:g}]"
    return check


def percentile_range(v: float) -> Optional[str]:
    return None if 50 < v <= 100 else "must be in (50, 100]"


REACHES = ("always", "noisy", "training", "bits", "percentile", "qat", "hardware", "adc", "never")


def setting(default: Any, help: str, group: str, *, sweep: bool = False, unit: str = "", record: bool = True,
            choices: Optional[Callable[[], tuple]] = None, parse: Optional[Callable[[str], Any]] = None,
            check: Optional[Callable[[Any], Optional[str]]] = None, label: str = "", switch: bool = False,
            reaches: str = "always", expose: bool = True) -> Any:
    """A dataclass field that carries how it is shown, parsed and checked, and which points it reaches.

    sweep: the experiment sweeps a tuple of its values. record: written to results.csv and the
    quantization card (run and output settings are not). choices: the allowed values (a function, so
    registries are read when used). parse: text -> value for the command line and YAML strings.
    check: value -> problem or None. label: its name on the card. switch: a plain ``--flag`` (no
    ``--no-flag``). reaches: which sweep points the value can change: ``always``; ``noisy`` (points
    with analog noise); ``training`` (points that train energies, bits or ranges); ``bits`` (points
    that train or allocate bit-widths); ``percentile`` (with the percentile observer); ``qat`` (with
    quantization-aware training); ``hardware`` (runs that model tiles or ADCs); ``adc`` (runs with ADCs);
    ``never`` (iso-accuracy targets, search and output settings).
    A point's results row leaves the setting blank where it does not reach, and its id hashes
    exactly the cells that are not blank (docs/results.md). expose: a flag of ``main.py`` (False:
    set by the experiment from the point, e.g. per-channel noise from ``--granularity``). Without
    ``parse`` the type of the default (or of a sweep's first value) parses the text."""
    if reaches not in REACHES:
        raise TypeError(f"reaches={reaches!r}: one of {', '.join(REACHES)}")
    if choices is not None:
        parse = parse or str
    if parse is None and not isinstance(default, bool):
        sample = default[0] if isinstance(default, tuple) else default
        if sample is None:
            raise TypeError(f"setting({default!r}, ...) needs parse=")
        parse = type(sample)
    meta = dict(help=help, group=group, sweep=sweep, unit=unit, record=record, choices=choices, parse=parse,
                check=check, label=label, switch=switch, reaches=reaches, expose=expose)
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    if isinstance(default, (list, tuple)):
        return field(default=tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


def default_of(f: dataclasses.Field) -> Any:
    """A field's default value (made by its factory, if it has one)."""
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def exposed(owner: type) -> list[dataclasses.Field]:
    """The fields of dataclass ``owner`` declared with :func:`setting` and exposed as flags."""
    return [f for f in dataclasses.fields(owner) if f.metadata.get("expose")]


def include_settings(*owners: type, defaults: Optional[dict[str, Any]] = None):
    """A class decorator (put it below ``@dataclass``) that adds the exposed settings of the dataclasses
    ``owners`` to the class as fields of its own: a sweep setting becomes a tuple of values, ``defaults``
    replaces an owner's default where the experiment starts elsewhere. A setting declared by several
    owners (or by a base class) must be one declaration (inherited); the class may not re-declare an
    owner's setting. ``cls.owners`` lists every owner, a base class's first."""
    defaults = defaults or {}

    def add(cls: type) -> type:
        own = dict(cls.__dict__.get("__annotations__", {}))
        added: dict[str, Any] = {}
        seen = {f.name: f for base in cls.__mro__[1:] if dataclasses.is_dataclass(base)
                for f in dataclasses.fields(base)}  # what a base class already has
        for owner in owners:
            for f in exposed(owner):
                if f.name in own:
                    raise TypeError(f"{cls.__name__}.{f.name} re-declares {owner.__name__}.{f.name}")
                if f.name in seen:
                    if dict(seen[f.name].metadata) != dict(f.metadata):
                        raise TypeError(f"{owner.__name__}.{f.name} is declared twice with different metadata")
                    continue
                seen[f.name] = f
                default = defaults.get(f.name, default_of(f))
                if f.metadata["sweep"]:
                    default = None if default is None else default if isinstance(default, tuple) else (default,)
                    added[f.name] = Optional[tuple]
                else:
                    added[f.name] = f.type
                setattr(cls, f.name, field(default=default, metadata=f.metadata) if not isinstance(default, dict)
                        else field(default_factory=lambda d=default: dict(d), metadata=f.metadata))
        cls.__annotations__ = {**added, **own}
        cls.owners = getattr(cls, "owners", ()) + owners
        return cls

    return add


def parse_bits(text: str) -> Optional[int]:
    """A bit-width: an integer, or none / off / float for no quantization."""
    if str(text).lower() in ("none", "off", "float"):
        return None
    return int(text)


def parse_optional_int(text: str) -> Optional[int]:
    """An integer, or none / off for no value."""
    return None if str(text).lower() in ("none", "off") else int(text)


def parse_mapping(text: str) -> dict:
    """A JSON object (on the command line) or a YAML mapping."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def registered(registry, *extra: str, sums: bool = False) -> Callable[[], tuple]:
    """The choices of a registry (and ``extra`` names such as ``none``); import paths and plugins are
    checked by the registry itself (``check_field``). ``sums``: a value may also join several names with
    ``+`` (``thermal+shot``)."""
    def names() -> tuple:
        return registry.names() + extra

    names.registry, names.extra, names.sums = registry, extra, sums
    return names


def choice_problem(choices: Callable[[], tuple], v: Any) -> Optional[str]:
    """Why ``v`` is not one of ``choices`` (None when it is); a registry's choices also take import paths."""
    registry = getattr(choices, "registry", None)
    if registry is not None:
        parts = str(v).split("+") if choices.sums else [str(v)]
        if len(parts) == 1:
            return registry.problem(parts[0], choices.extra)
        problems = [f"{part}: {problem}" for part in parts if (problem := registry.problem(part))]
        return problems[0] if problems else None
    return None if v in choices() else f"unknown; choose from {', '.join(map(str, choices()))}"



def coerce(f: dataclasses.Field, value: Any) -> Any:
    """A YAML / Python value in the field's shape: sweeps become tuples, strings are parsed."""
    parse = f.metadata["parse"]

    def one(v):
        return parse(v) if parse is not None and isinstance(v, str) else v

    if f.metadata["sweep"] or isinstance(default_of(f), tuple):
        if value is None:
            return None
        return tuple(one(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
    return one(value)


def check_field(f: dataclasses.Field, value: Any) -> None:
    """The field's own check and choices, for every value of a sweep."""
    if value is None:
        return
    values = value if isinstance(value, tuple) else (value,)
    check, choices = f.metadata["check"], f.metadata["choices"]
    if f.metadata["sweep"] and not values:
        raise ConfigError(f"--{f.name}: give at least one value", f.name)
    for v in values:
        problem = check(v) if check is not None and v is not None else None
        if problem is None and choices is not None:
            problem = choice_problem(choices, v)
        if problem:
            raise ConfigError(f"--{f.name} {v}: {problem}", f.name)
