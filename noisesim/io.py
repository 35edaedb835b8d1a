"""Crash-safe file writes: write to a temporary file in the same folder, fsync, rename."""
from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], binary: bool = False) -> None:
    """Call ``write(file)`` on a temporary file and atomically rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write(path, lambda f: json.dump(obj, f, indent=2, sort_keys=True, default=str))


def save_checkpoint(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` that never leaves a half-written file behind."""
    atomic_write(path, lambda f: torch.save(obj, f), binary=True)


def load_state_dict(path: str | os.PathLike, flag: str = "--checkpoint_path") -> dict[str, torch.Tensor]:
    """A state dict (or ``{"state_dict": ...}``) from a ``torch.save`` file, loaded with ``weights_only=True``.

    A missing, empty, truncated or foreign file raises ``ValueError`` with one line naming ``flag`` and the
    file (never advice to unpickle it with ``weights_only=False``)."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ValueError(f"{flag} {path}: not a regular file ({'a folder' if path.is_dir() else 'a device or pipe'})"
                         "; give the torch.save file")
    if not path.is_file():
        raise ValueError(f"{flag} {path}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"{flag} {path}: the file is empty")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, EOFError, RuntimeError, ... for a bad file
        raise ValueError(f"{flag} {path}: not a readable torch.save state dict (truncated, corrupt or another "
                         f"format; {type(e).__name__})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{flag} {path}: holds a {type(obj).__name__}, not a state dict of tensors")
    return obj


def apply_state_dict(module: torch.nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike,
                     flag: str = "--checkpoint_path") -> None:
    """``module.load_state_dict(state)`` with a one-line ``ValueError`` when keys or shapes do not match."""
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    problems = [f"{len(v)} {what} (e.g. {v[0]})" for v, what in
                ((missing, "missing keys"), (unexpected, "unexpected keys"), (shapes, "shape mismatches")) if v]
    if problems:
        raise ValueError(f"{flag} {path}: does not fit the {type(module).__name__}: {'; '.join(problems)}")
    module.load_state_dict(state)


def load_partial(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, list]:
    """Load the tensors of ``state`` whose key and shape fit ``module``; report the rest.

    Returns ``{"loaded": [keys], "missing": [module keys not in state], "unexpected": [state keys not in the
    module], "mismatched": [(key, checkpoint shape, module shape)]}`` (e.g. a W4A4 network loaded into a variant
    with a narrowed layer: every layer but the changed ones warm-starts)."""
    own = module.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    module.load_state_dict(fits, strict=False)
    return {"loaded": sorted(fits), "missing": sorted(set(own) - set(state)),
            "unexpected": sorted(set(state) - set(own)),
            "mismatched": [(k, tuple(state[k].shape), tuple(own[k].shape)) for k in sorted(state)
                           if k in own and own[k].shape != state[k].shape]}


def write_csv_rows(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Write rows atomically; the header is the union of their keys in first-seen order, missing cells empty."""
    fields = list(dict.fromkeys(k for r in rows for k in r))

    def write(f):
        w = csv.DictWriter(f, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(rows)

    atomic_write(path, write)


def append_csv_row(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one row to a CSV file atomically (the whole file is rewritten and renamed).

    New columns are added to the header; earlier rows get empty cells for them.
    """
    write_csv_rows(path, [*read_csv_rows(path), row])


def read_csv_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))

