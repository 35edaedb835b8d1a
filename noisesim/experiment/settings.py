"""How one experiment setting is declared, parsed and checked.

``setting(...)`` makes a dataclass field that carries its help text, unit, group, parser and check;
``coerce`` turns a YAML / Python value into the field's shape and ``check_field`` validates it. The
value checks return why a value is wrong, or None.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import field
from typing import Any, Callable, Optional, Union

from noisesim.config import ConfigError


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


def setting(default: Any, help: str, group: str, *, sweep: bool = False, unit: str = "", record: bool = True,
            choices: Optional[Callable[[], tuple]] = None, parse: Optional[Callable[[str], Any]] = None,
            check: Optional[Callable[[Any], Optional[str]]] = None, label: str = "", switch: bool = False,
            point: Union[bool, tuple[str, ...]] = True, applies: str = "", keyed_when_set: bool = False) -> Any:
    """A field with its metadata.

    sweep: a tuple of values swept over. record: written to every result row (a confounder).
    choices: the allowed values (a function, so registries are read when used). parse: text ->
    value for the command line and YAML strings. check: value -> problem or None. label: its name
    on the quantization card. switch: a plain ``--flag`` (no ``--no-flag`` form). point: the value can
    change a point's result (so it is part of the point's id; iso-accuracy targets are not), or the
    allocation methods whose points it can change (a greedy setting does not re-key uniform points). applies:
    "training" (only points that train something), "search" (only with --binary_search) or "qat" (only
    with --qat): elsewhere the setting's cell in results.csv is left empty, like a method's own settings on
    other methods' rows. keyed_when_set: part of point ids only when not at its default (a setting added
    after run folders existed, so that their points keep their ids). Without ``parse``
    the type of the default (or of a sweep's first value) parses the text."""
    if choices is not None:
        parse = parse or str
    if parse is None and not isinstance(default, bool):
        sample = default[0] if isinstance(default, tuple) else default
        if sample is None:
            raise TypeError(f"setting({default!r}, ...) needs parse=")
        parse = type(sample)
    meta = dict(help=help, group=group, sweep=sweep, unit=unit, record=record, choices=choices, parse=parse,
                check=check, label=label, switch=switch, point=point, applies=applies,
                keyed_when_set=keyed_when_set)
    if isinstance(default, (list, tuple)):
        return field(default=tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


def parse_bits(text: str) -> Optional[int]:
    """A bit-width: an integer, or none / off / float for no quantization."""
    if str(text).lower() in ("none", "off", "float"):
        return None
    return int(text)


def parse_mapping(text: str) -> dict:
    """A JSON object (on the command line) or a YAML mapping."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def registered(registry, *extra: str) -> Callable[[], tuple]:
    """The choices of a registry (and ``extra`` names such as ``none``); import paths and plugins are
    checked by the registry itself (``check_field``)."""
    def names() -> tuple:
        return registry.names() + extra

    names.registry, names.extra = registry, extra
    return names


def choice_problem(choices: Callable[[], tuple], v: Any) -> Optional[str]:
    """Why ``v`` is not one of ``choices`` (None when it is); a registry's choices also take import paths."""
    registry = getattr(choices, "registry", None)
    if registry is not None:
        return registry.problem(str(v), choices.extra)
    return None if v in choices() else f"unknown; choose from {', '.join(map(str, choices()))}"



def coerce(f: dataclasses.Field, value: Any) -> Any:
    """A YAML / Python value in the field's shape: sweeps become tuples, strings are parsed."""
    parse = f.metadata["parse"]

    def one(v):
        return parse(v) if parse is not None and isinstance(v, str) else v

    if f.metadata["sweep"] or f.name == "ignore":
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
