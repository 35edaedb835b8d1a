"""Fashion-MNIST (Xiao et al. 2017) from IDX files.

With ``data_path``, looked for under ``data_path``, ``data_path/FashionMNIST/raw`` (torchvision's
layout) and ``data_path/fashion-mnist``, and, when missing there, downloaded into ``data_path`` by
torchvision's downloader (a folder without the data is never silently replaced by another copy).
Without it, read from the Debian package ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist).
"""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from noisesim.data.bundle import DataBundle, DataNotFoundError, DataOptions, tensor_bundle
from noisesim.registry import DATASETS

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
MEAN, STD = 0.2860, 0.3530
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): magic (0, 0, dtype, ndim), big-endian dims, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find(name: str, dirs: list[Path]) -> Optional[Path]:
    for d in dirs:
        for candidate in (d / name, d / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def search_dirs(data_path: Optional[str]) -> list[Path]:
    """Where the files are looked for: under ``data_path`` when given, else the Debian package's folder."""
    if not data_path:
        return [DEBIAN_DIR]
    root = Path(data_path).expanduser()
    return [root, root / "FashionMNIST" / "raw", root / "fashion-mnist"]


def _download(data_path: str) -> str:
    """Fetch the official files into ``data_path`` with torchvision; what went wrong, or '' on success."""
    from torchvision.datasets import FashionMNIST

    made = [d for d in (Path(data_path) / "FashionMNIST", Path(data_path) / "FashionMNIST" / "raw") if not d.exists()]
    try:
        for train in (True, False):
            FashionMNIST(data_path, train=train, download=True)
    except (OSError, RuntimeError, ValueError) as e:  # no network, or a partial / corrupt download
        for d in reversed(made):  # leave the folder as it was
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
    return ""


def load_fashion_mnist(split: str, data_path: Optional[str] = None,
                       download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(images, labels)``: float images (N, 1, 28, 28) normalised by MEAN/STD, int64 labels."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    dirs = search_dirs(data_path)
    img_name, lbl_name = _FILES[split]
    img, lbl = _find(img_name, dirs), _find(lbl_name, dirs)
    failure = ""
    if (img is None or lbl is None) and download and data_path:
        failure = _download(data_path)
        img, lbl = _find(img_name, dirs), _find(lbl_name, dirs)
    if img is None or lbl is None:
        where = ", ".join(map(str, dirs))
        if data_path:
            raise DataNotFoundError(f"--data_path {data_path}: no Fashion-MNIST {split} files ({img_name}[.gz]) in "
                                    f"{where}, and the download failed ({failure or 'incomplete'})")
        raise DataNotFoundError(f"Fashion-MNIST {split} files ({img_name}[.gz]) not found in {where}; install the "
                                "Debian package dataset-fashion-mnist or pass --data_path DIR (downloaded there)")
    x = torch.from_numpy(read_idx(img).copy()).float().div_(255).unsqueeze(1)
    y = torch.from_numpy(read_idx(lbl).astype(np.int64))
    return (x - MEAN) / STD, y


@DATASETS.register("fashion_mnist")
def fashion_mnist(o: DataOptions) -> DataBundle:
    return tensor_bundle(load_fashion_mnist("train", o.data_path), load_fashion_mnist("test", o.data_path), o, 10, 1)
