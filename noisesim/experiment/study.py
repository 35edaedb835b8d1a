"""``noisesim study NAME [IMAGENET_DIR]`` (= ``python main.py study``): run a study of the run_noise / run_quant
scripts — its presets, grids and settings are data (``noisesim/configs/studies/NAME.yaml``), not bash.

    python main.py study thermal                         # the offline presets, resumable run folders
    python main.py study thermal /data/imagenet          # the ImageNet models instead
    python main.py study allocation_methods --presets fmnist --variants thermal -- --mc_repeats 1
    python main.py study --list                          # every study with what it measures

A study file holds ``about`` (what it measures), ``presets`` (the offline presets it runs by
default, from ``noisesim/configs/presets/``), ``settings`` (main.py's YAML keys, for every run),
``per_preset`` (the study's settings per preset, ``imagenet`` included), ``hardware`` (a hardware preset of
``noisesim/configs/hardware/`` under every run's settings, as ``--hardware``), ``variants`` (run folders
per preset, each with its own ``settings`` and ``per_preset``; ``folder`` / ``suffix`` place them,
by default ``<log_dir>/<study>/<preset's run name>-<variant>``), ``compare`` (variants compared per
preset afterwards: plots and a card with one column per setting), ``collect`` (plots copied from every
run folder into ``<log_dir>/<study>/``) and ``extends`` (another study whose keys it starts from).
Later settings win: study, preset, study per preset, variant, variant per preset, then the flags
after ``--``. Every run is checked before the first one starts, and runs resume (a rerun skips
finished points). Exit codes: 0 done, 2 bad input, else the failing run's.
"""
from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from noisesim.experiment import main as experiment
from noisesim.experiment.cli import parse_args
from noisesim.experiment.config import ExperimentConfig
from noisesim.reports import __main__ as plot
from noisesim.usage import Parser, UsageError, fail

PROG = "noisesim study"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
KEYS = {"about", "presets", "hardware", "settings", "per_preset", "variants", "compare", "collect", "extends"}
VARIANT_KEYS = {"settings", "per_preset", "folder", "suffix"}


@dataclass
class Run:
    """One run folder of a study: where it lives, and main.py's flags for it."""

    folder: Path
    flags: list[str]
    preset: str
    variant: str


def _yaml(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"{what}: no such file {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping")
    return data


def _merged(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``, mappings merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_study(name: str) -> dict[str, Any]:
    """A study by name (``noisesim/configs/studies/NAME.yaml``) or path, its ``extends`` resolved."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else CONFIGS / "studies" / f"{name}.yaml"
    if not path.is_file():
        raise UsageError(f"study {name}: unknown; choose from {', '.join(study_names())} or give a .yaml file")
    study = _yaml(path, f"study {name}")
    unknown = set(study) - KEYS
    if unknown:
        raise UsageError(f"{path}: unknown keys {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(KEYS))})")
    for v, spec in (study.get("variants") or {}).items():
        if set(spec or {}) - VARIANT_KEYS:
            raise UsageError(f"{path}: variant {v}: unknown keys {', '.join(sorted(set(spec) - VARIANT_KEYS))}")
    if "extends" in study:
        study = _merged(load_study(study.pop("extends")), study)
    return study


def study_names() -> list[str]:
    return sorted(p.stem for p in (CONFIGS / "studies").glob("*.yaml") if not p.stem.startswith("_"))


def to_flags(settings: dict[str, Any]) -> list[str]:
    """main.py's flags for a mapping of its YAML keys (None leaves a setting at its default)."""
    fields = {f.name: f for f in dataclasses.fields(ExperimentConfig)}
    unknown = sorted(set(settings) - set(fields))
    if unknown:
        raise UsageError(f"unknown settings {', '.join(unknown)}")
    flags = []
    for k, v in settings.items():
        if v is None:
            continue
        if isinstance(v, bool):
            if v or not fields[k].metadata["switch"]:
                flags.append(f"--{k}" if v else f"--no-{k}")
        elif isinstance(v, dict):
            flags += [f"--{k}", json.dumps(v)]
        else:
            flags += [f"--{k}", *map(str, v if isinstance(v, list) else [v])]
    return flags


def plan(name: str, study: dict, log_dir: Path, imagenet: Optional[str], presets: Optional[list[str]],
         variants: Optional[list[str]], models: Optional[list[str]], extra: list[str]) -> list[Run]:
    """Every run of the study, in order."""
    all_variants = study.get("variants") or {"": {"suffix": ""}}
    chosen = variants or list(all_variants)
    bad = [v for v in chosen if v not in all_variants]
    if bad:
        raise UsageError(f"--variants {' '.join(bad)}: not in study {name} ({', '.join(all_variants)})")
    names = ["imagenet"] if imagenet else presets or study.get("presets") or ["fmnist", "effnet", "minilm"]
    runs = []
    for variant in chosen:
        spec = all_variants[variant] or {}
        folder = log_dir / spec.get("folder", name)
        suffix = spec.get("suffix", f"-{variant}")
        for preset in names:
            base = _yaml(CONFIGS / "presets" / f"{preset}.yaml", f"preset {preset}")
            settings = {**study.get("settings", {}), **base.get("settings", {}),
                        **(study.get("per_preset") or {}).get(preset, {}), **spec.get("settings", {}),
                        **(spec.get("per_preset") or {}).get(preset, {})}
            bases = [(m, {"model": m, "data_path": imagenet}) for m in (models or base["models"])] if imagenet \
                else [(base["run_name"], {})]
            for run_name, own in bases:
                hardware = ["--hardware", study["hardware"]] if study.get("hardware") else []
                flags = ["--config", "none", *hardware, *to_flags({**settings, **own}), "--log_dir", str(folder),
                         "--run_name", f"{run_name}{suffix}", "--resume", *extra]
                runs.append(Run(folder / f"{run_name}{suffix}", flags, run_name, variant))
    return runs


def build_parser(prog: str = PROG) -> Parser:
    p = Parser(prog=prog, description="Run a study of the run_noise / run_quant scripts from its YAML file "
               "(noisesim/configs/studies/); flags after -- go to every run's main.py.")
    p.add_argument("study", nargs="?", help="a study name (see --list) or a study .yaml file")
    p.add_argument("imagenet", nargs="?", metavar="IMAGENET_DIR", help="run the ImageNet models on this "
                   "ImageFolder tree (train/, val/) instead of the offline presets")
    p.add_argument("--presets", nargs="+", help="offline presets to run (default: the study's)")
    p.add_argument("--models", nargs="+", help="ImageNet models (default: the imagenet preset's five)")
    p.add_argument("--variants", nargs="+", help="variants to run (default: all of the study's)")
    p.add_argument("--log_dir", default="logs", help="where the study's folders are made (default: logs)")
    p.add_argument("--dry_run", action="store_true", help="print every run's command line and stop")
    p.add_argument("--list", action="store_true", help="list the studies and what each measures")
    return p


def main(argv: Optional[Sequence[str]] = None, prog: str = PROG) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    try:
        args = build_parser(prog).parse_intermixed_args(argv)
        if args.list:
            for n in study_names():
                print(f"{n:<24} {' '.join(str(load_study(n).get('about', '')).split())}")
            return 0
        if args.study is None:
            raise UsageError("give a study (see --list)")
        if args.imagenet and not Path(args.imagenet).is_dir():
            raise UsageError(f"IMAGENET_DIR {args.imagenet}: not a directory (expected train/ and val/ trees)")
        study = load_study(args.study)
        runs = plan(Path(args.study).stem, study, Path(args.log_dir), args.imagenet, args.presets, args.variants,
                    args.models, extra)
        for run in runs:  # every run's settings checked before the first one starts
            parse_args(run.flags, prog)
    except UsageError as e:
        return fail(prog, e)
    for run in runs:
        print(f"$ python main.py {shlex.join(run.flags)}" if args.dry_run else f"== {run.folder}")
        if not args.dry_run:
            code = experiment.main(run.flags, "main.py")
            if code:
                return code
    if not args.dry_run:
        _compare(study, runs, Path(args.log_dir) / Path(args.study).stem)
    return 0


def _compare(study: dict, runs: list[Run], out: Path) -> None:
    """The study's comparisons of variants (per preset) and its collected plots."""
    compared = study.get("compare") or []
    for preset in dict.fromkeys(r.preset for r in runs):
        folders = [str(r.folder) for r in runs if r.preset == preset and r.variant in compared]
        if len(folders) > 1:
            plot.main(["--out", str(out / f"{preset}-compare"), *folders])
            print(f"comparison: {out / f'{preset}-compare'}")
    for stem in study.get("collect") or []:
        for r in runs:
            for ext in ("png", "pdf"):
                if (r.folder / f"{stem}.{ext}").is_file():
                    out.mkdir(parents=True, exist_ok=True)
                    shutil.copy(r.folder / f"{stem}.{ext}", out / f"{r.variant}-{r.folder.name}.{ext}")
        print(f"{stem} figures: {out}")
