"""``noisesim migrate RUN`` (= ``python main.py migrate``): bring a run folder written by an older noisesim
to today's settings names and point ids, so that ``--resume`` continues it without recomputing a point.

    python main.py migrate logs/<run>

What changes: renamed settings (``override_with_noise_bits`` is ``noise_as_quantizer``, ``allocate`` is
``quantity``, the closed form's ``--sensitivity hessian`` is ``hutchinson``); a point's
energy column is split into ``e_mac`` (a uniform sweep's energy) and ``target_emac`` (the average an
allocation aims at); every point's id is recomputed by today's rule (docs/results.md: the hash of the
settings that reach it), and the files named by ids (``layers/``, ``allocations/``, ``outcomes/``,
``search.csv``) follow. The folder is first copied to ``<RUN>.pre-migrate-<time>``; nothing is
deleted. A folder already in today's form is left as it is. Exit codes: 0 done, 2 bad input.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from noisesim.config import ConfigError
from noisesim.experiment.config import ExperimentConfig, Point
from noisesim.io import read_csv_rows, write_csv_rows, write_json
from noisesim.usage import Parser, UsageError, fail

PROG = "noisesim migrate"
RENAMED = {"override_with_noise_bits": "noise_as_quantizer", "allocate": "quantity"}  # old setting name -> today's
FILES = (("layers", ".csv"), ("layers", "_channels.csv"), ("allocations", ".json"), ("outcomes", ".npz"))


def settings_of(old: dict[str, Any]) -> dict[str, Any]:
    """An old config.json's experiment settings under today's names (an old empty mapping was None)."""
    new = {RENAMED.get(k, k): v for k, v in old.items()}
    if new.get("overrides") is None:
        new["overrides"] = {}
    if new.get("sensitivity") == "hessian":  # the closed form's Hutchinson estimate, now named so
        new["sensitivity"] = "hutchinson"
    return new


def _value(text: str, kind: type) -> Any:
    if text in ("", None):
        return None
    return kind(float(text)) if kind is int else kind(text)


def point_of(row: dict[str, str], cfg: ExperimentConfig) -> Point:
    """The point a results row was computed for, as today's sweep names it."""
    kinds = {"noise_type": str, "allocation": str, "granularity": str, "seed": int, "weight_bits": int,
             "act_bits": int}
    values = {f.name: _value(row.get(f.name, ""), kinds.get(f.name, float)) for f in dataclasses.fields(Point)}
    if "e_mac" not in row:  # written before the split: one column held the energy, target or not
        energy = values["target_emac"]
        values["e_mac"], values["target_emac"] = (None, energy) if cfg.target_emac else (energy, None)
    return cfg._effective(Point(**values))


def migrate(run: Path) -> tuple[int, Optional[Path]]:
    """Migrate the run folder ``run`` in place (after a copy); returns the points whose id changed and the copy."""
    config = json.loads((run / "config.json").read_text())
    cfg = ExperimentConfig.from_dict({**settings_of(config["experiment"]), "progress": False})
    rows = read_csv_rows(run / "results.csv")
    new_rows, ids = [], {}
    for row in rows:
        p = point_of(row, cfg)
        clean = {} if cfg.qat else {"clean_id": cfg.clean_id(p)}
        new = {"point_id": cfg.point_id(p), **dataclasses.asdict(p), **cfg.recorded_for(p), **clean}
        ids.update({row["point_id"]: new["point_id"], row.get("clean_id", ""): new.get("clean_id", "")})
        new_rows.append({**{RENAMED.get(k, k): v for k, v in row.items()}, **new})
    changed = sum(old != new for old, new in ids.items() if old and not old.startswith("clean-"))
    renamed_settings = set(config["experiment"]) & set(RENAMED)
    if not changed and not renamed_settings and all(o == n for o, n in ids.items()):
        return 0, None
    backup = run.with_name(f"{run.name}.pre-migrate-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.copytree(run, backup)
    for old, new in ids.items():
        for folder, suffix in FILES:
            path = run / folder / f"{old}{suffix}"
            if old and old != new and path.is_file():
                path.rename(run / folder / f"{new}{suffix}")
    write_csv_rows(run / "results.csv", new_rows)
    search = run / "search.csv"
    if search.is_file():
        write_csv_rows(search, [{**r, "point_id": ids.get(r.get("point_id", ""), r.get("point_id", ""))}
                             for r in read_csv_rows(search)])
    config.update(experiment=cfg.to_dict(), fields=cfg.describe(),
                  migrated={"at": time.strftime("%Y-%m-%d %H:%M:%S"), "copy": backup.name})
    write_json(run / "config.json", config)
    return changed, backup


def build_parser(prog: str = PROG) -> Parser:
    p = Parser(prog=prog, description="Bring a run folder written by an older noisesim to today's settings and "
               "point ids, so that --resume continues it (the folder is copied aside first).")
    p.add_argument("run", help="the run folder (holding config.json and results.csv)")
    return p


def main(argv: Optional[Sequence[str]] = None, prog: str = PROG) -> int:
    try:
        args = build_parser(prog).parse_args(list(sys.argv[1:] if argv is None else argv))
        run = Path(args.run)
        if not (run / "config.json").is_file() or not (run / "results.csv").is_file():
            raise UsageError(f"{run}: not a run folder (no config.json and results.csv)")
        changed, backup = migrate(run)
    except (UsageError, ConfigError, KeyError, json.JSONDecodeError) as e:
        return fail(prog, str(e) if not isinstance(e, KeyError) else f"{args.run}: config.json lacks {e}")
    if backup is None:
        print(f"{run}: already in today's form; nothing to do")
    else:
        print(f"{run}: {changed} point ids changed; settings and files renamed (the old folder is kept at {backup})")
    return 0
