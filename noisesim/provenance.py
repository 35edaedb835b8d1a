"""Where a result came from: noisesim's version and git commit, the library versions, the device.

Written to every run folder's ``config.json``, to every row of ``results.csv`` and to the
quantization card, so that a number can be traced to the code and the machine that produced it.
"""
from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Optional

import torch

from noisesim.version import __version__

PACKAGES = ("torch", "torchvision", "transformers", "numpy", "scipy")


def git_commit() -> Optional[str]:
    """The commit of the checkout noisesim runs from (with ``-dirty`` for uncommitted changes), or None
    for an installed copy without git."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=root,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _version(package: str) -> Optional[str]:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def device_name(device: torch.device | str) -> str:
    """``cpu (N threads)`` or ``cuda:0 (GPU model)``."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({torch.get_num_threads()} threads, {platform.machine()})"


def provenance(device: torch.device | str = "cpu") -> dict[str, Optional[str]]:
    """noisesim_version, git_commit, python, <package>_version for torch, torchvision, transformers, numpy,
    scipy (None when not installed), device."""
    info = {"noisesim_version": __version__, "git_commit": git_commit(), "python": platform.python_version()}
    info.update({f"{p}_version": _version(p) for p in PACKAGES})
    info["torch_version"] = torch.__version__  # with its build tag (+cpu, +cu130)
    info["device"] = device_name(device)
    return info
