"""Fashion-MNIST (Xiao et al. 2017) from IDX files.

Looked for, in order, under ``data_path``, ``data_path/FashionMNIST/raw`` (torchvision's
layout) and the Debian package ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist).
With ``download=True`` and nothing found, torchvision's downloader fetches it into
``data_path``.
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
    dirs = []
    if data_path:
        root = Path(data_path).expanduser()
        dirs += [root, root / "FashionMNIST" / "raw", root / "fashion-mnist"]
    return dirs + [DEBIAN_DIR]


def load_fashion_mnist(split: str, data_path: Optional[str] = None,
                       download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(images, labels)``: float images (N, 1, 28, 28) normalised by MEAN/STD, int64 labels."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    dirs = search_dirs(data_path)
    img_name, lbl_name = _FILES[split]
    img, lbl = _find(img_name, dirs), _find(lbl_name, dirs)
    if (img is None or lbl is None) and download and data_path:
        from torchvision.datasets import FashionMNIST
        FashionMNIST(data_path, train=split == "train", download=True)
        img, lbl = _find(img_name, dirs), _find(lbl_name, dirs)
    if img is None or lbl is None:
        raise DataNotFoundError(
            f"Fashion-MNIST {split} files ({img_name}[.gz]) not found in "
            f"{', '.join(map(str, dirs))}; install the Debian package dataset-fashion-mnist "
            "or pass --data_path DIR with internet access to download it")
    x = torch.from_numpy(read_idx(img).copy()).float().div_(255).unsqueeze(1)
    y = torch.from_numpy(read_idx(lbl).astype(np.int64))
    return (x - MEAN) / STD, y


@DATASETS.register("fashion_mnist")
def fashion_mnist(o: DataOptions) -> DataBundle:
    return tensor_bundle(load_fashion_mnist("train", o.data_path), load_fashion_mnist("test", o.data_path), o, 10, 1)
