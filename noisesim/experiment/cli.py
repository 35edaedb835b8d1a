"""The command line of main.py, derived from :class:`ExperimentConfig`: one flag per field.

Flag names and meanings follow the reference implementation of the papers. Every flag that
takes a list sweeps: the run covers the Cartesian product of all lists. ``--config FILE``
reads YAML defaults (keys are the flags without dashes) before the command line; without any
flag the packaged default study runs. The parser only parses (text -> values); every check
lives in the dataclass (a bad value fails as ``--flag value: why``).
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from noisesim.config import ConfigError, hardware_preset, hardware_presets
from noisesim.experiment.config import GROUPS, ExperimentConfig
from noisesim.settings import coerce, default_of
from noisesim.usage import Parser, UsageError

DEFAULT_STUDY = Path(__file__).resolve().parents[1] / "configs" / "default_study.yaml"



class _Boolean(argparse.BooleanOptionalAction):
    """``--flag`` / ``--no-flag`` with the help text as given (some Python versions append the default again)."""

    def __init__(self, *args, help=None, **kw):
        super().__init__(*args, help=help, **kw)
        self.help = help


def _parser(f: dataclasses.Field):
    """Text -> value for the field's flag (the element type of a sweep); checks are the dataclass's."""
    convert = f.metadata["parse"]

    def parse(text: str):
        try:
            return convert(text)
        except ValueError:
            kind = {int: "an integer", float: "a number"}.get(convert, "a valid value")
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def add_flag(parser, f: dataclasses.Field, defaults: Optional[dict[str, Any]] = None) -> None:
    """The flag of a setting (``--name``; a boolean also ``--no-name``) with its help, choices, unit and default
    (``defaults`` replaces the field's own)."""
    m = f.metadata
    own = default_of(f)
    default = (defaults or {}).get(f.name, list(own) if isinstance(own, tuple) else own)
    unit = f" [{m['unit']}]" if m["unit"] else ""
    shown = " ".join(map(str, default)) or "none" if isinstance(default, list) else default
    words = m["help"]  # may say in words what no value means: "(default: the whole test set)"
    if default is not None and default != []:
        words = re.sub(r" ?\(default: [^)]*\)", "", words)
    text = words + (f": {', '.join(map(str, m['choices']()))}" if m["choices"] is not None else "") + unit
    helptext = (text if "(default:" in text else f"{text} (default: {shown})").replace("%", "%%")
    flag = f"--{f.name}"
    if f.type in ("bool", bool):
        if m["switch"]:
            parser.add_argument(flag, action="store_true", help=m["help"].replace("%", "%%"))
        else:
            parser.add_argument(flag, action=_Boolean, default=default, help=helptext)
        return
    nargs = "+" if m["sweep"] else "*" if isinstance(own, tuple) else None
    parser.add_argument(flag, type=_parser(f), nargs=nargs, help=helptext, metavar=f.name.upper(), default=default)


OVERVIEW = """Simulate analog noise and quantization in a network, allocate energies or bits per layer and
channel, and measure the savings at iso-accuracy.

commands:
  {prog} [FLAGS]                  a sweep of noise, energies and bits; allocations; iso-accuracy savings
  {prog} precision [FLAGS]        training with precision that moves: AdaptiveDPC, CPT, Double Rounding
  {prog} export RUN [FLAGS]       a run's network as integers (verified), test-bench files, ONNX
  {prog} plot RUN... [FLAGS]      plots, quantization cards and savings tables redrawn from run folders
  {prog} pretrain [FLAGS]         a float network trained with the project's training loop
  {prog} study NAME [DIR]         a study of run_noise/ and run_quant/ from its YAML file
  {prog} migrate RUN              a run folder of an older noisesim brought up to date
  {prog} query RUN KEY            one value of a run folder
  {prog} COMMAND --help           each command's flags

examples:
  {prog}                                            the default study: shot noise, about 2 min on 2 CPU cores
  {prog} --noise_type thermal --target_emac 2 5 10 20 50 --allocation uniform trained closed_form \\
      --granularity layer channel --acc_drop 0.01   energies per layer and per channel, savings at float - 1 pt
  {prog} --config none --model resnet20 --noise_type none --weight_bits 4 --act_bits 4   plain W4A4
  {prog} plot logs/resnet20-fashion_mnist-shot       redraw a run's plots and tables
"""


def build_parser(prog: str = "main.py", defaults: Optional[dict[str, Any]] = None,
                 defaults_from: str = "", config: type = ExperimentConfig) -> Parser:
    """The parser of ``config``'s fields; ``defaults`` (from ``defaults_from``, a YAML file) replace the fields'
    own in help and parse."""
    defaults = defaults or {}
    shown = f"those of {defaults_from}" if defaults_from else "the plain defaults"
    p = Parser(prog=prog, usage=f"{prog} [COMMAND] [FLAGS]", formatter_class=argparse.RawDescriptionHelpFormatter,
               description=OVERVIEW.format(prog=prog) + f"\nThe flags below are the sweep's (no COMMAND). Every "
               f"list-valued flag sweeps (Cartesian product).\nDefaults shown are {shown}; flags override them.")
    p.add_argument("--config", help=f"YAML file of defaults (keys are flag names without dashes), or 'none' for "
                   f"the plain defaults (default: {DEFAULT_STUDY.name}, the default study)")
    p.add_argument("--hardware", help="a hardware preset over those defaults: array rows, ADC, converter costs, noise "
                   f"sources ({', '.join(hardware_presets())}, or a YAML file of such keys; flags override it)")
    groups = {g: p.add_argument_group(g) for g in GROUPS}
    for f in dataclasses.fields(config):
        add_flag(groups[f.metadata["group"]], f, defaults)
    return p


def parse_args(argv: Optional[Sequence[str]] = None, prog: str = "main.py",
               config: type = ExperimentConfig) -> ExperimentConfig:
    """Parse (YAML defaults first, then the command line) into a validated config; raises UsageError."""
    argv = list(sys.argv[1:] if argv is None else argv)
    config_path = _config_path(argv)
    if config_path is None:
        config_path = str(DEFAULT_STUDY)
    defaults = {} if config_path.lower() == "none" else load_yaml(config_path, config)
    hardware = _flag_value(argv, "--hardware", "a preset name or a YAML file")
    if hardware is not None:
        try:
            defaults.update(as_defaults(hardware_preset(hardware), config, f"--hardware {hardware}"))
        except ConfigError as e:
            raise UsageError(f"--hardware {e}") from None
    parser = build_parser(prog, defaults, "" if config_path.lower() == "none" else config_path, config)
    values = {k: v for k, v in vars(parser.parse_args(argv)).items() if k not in ("config", "hardware")}
    try:
        cfg = config.from_dict(values)
        cfg.check_paths()
    except ConfigError as e:
        raise UsageError(str(e)) from None
    if _config_path(argv) is None:
        took = "; flags override it" if argv else ": about 2 min on 2 CPU cores (benchmarks/quickstart.py)"
        print(f"defaults: the default study ({DEFAULT_STUDY.name}){took} (--config none: the plain defaults)")
    return cfg


def _config_path(argv: list[str]) -> Optional[str]:
    """The value of the last ``--config`` (as argparse would take it), or None."""
    return _flag_value(argv, "--config", "a YAML file (or none)")


def _flag_value(argv: list[str], flag: str, what: str) -> Optional[str]:
    """The value of the last ``flag`` (as argparse would take it), or None."""
    found = None
    for i, a in enumerate(argv):
        if a == flag:
            if i + 1 >= len(argv):
                raise UsageError(f"{flag} needs {what}")
            found = argv[i + 1]
        elif a.startswith(f"{flag}="):
            found = a.split("=", 1)[1]
    return found


def load_yaml(path: str, config: type = ExperimentConfig, flag: str = "--config") -> dict[str, Any]:
    """The YAML file's settings as parser defaults (keys checked against the config's fields)."""
    if not Path(path).is_file():
        raise UsageError(f"{flag} {path}: no such file")
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UsageError(f"{flag} {path}: not valid YAML ({str(e).splitlines()[0]})")
    if not isinstance(data, dict):
        raise UsageError(f"{flag} {path}: expected a mapping of flag names to values")
    return as_defaults(data, config, f"{flag} {path}")


def as_defaults(data: dict[str, Any], config: type, where: str) -> dict[str, Any]:
    """Settings read from ``where`` (a YAML file) as parser defaults: keys checked against the config's fields,
    values coerced to their shape (sweeps as lists)."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UsageError(f"{where}: unknown keys {', '.join(unknown)}")
    try:
        values = {k: coerce(fields[k], v) for k, v in data.items()}
    except ValueError as e:
        raise UsageError(f"{where}: {e}")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
