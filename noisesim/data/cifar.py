"""CIFAR-10, python version: ``DIR/cifar-10-batches-py/{data_batch_1..5, test_batch}``, pickled dicts
with b"data" (N, 3072 uint8) and b"labels"; normalised by the training set's channel mean and std.

Missing files are downloaded into DIR by ``torchvision.datasets.CIFAR10(DIR, download=True)``
(which checks the official MD5 sums). They are then read here rather than through that class,
because it refuses any file whose MD5 differs from the official one — which rules out the small
files in the same format that the tests generate.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from noisesim.data.bundle import DataBundle, DataNotFoundError, DataOptions, tensor_bundle
from noisesim.registry import DATASETS

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def load_cifar10(data_path: Optional[str], train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    root = Path(data_path or "") / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    if data_path and not all((root / n).is_file() for n in names):
        _download(data_path)
    if not data_path or not all((root / n).is_file() for n in names):
        raise DataNotFoundError(
            f"CIFAR-10 batches not found in {root} and not downloadable; pass --data_path DIR holding "
            "cifar-10-batches-py (torchvision.datasets.CIFAR10(DIR, download=True) fetches it)")
    data, labels = [], []
    for n in names:
        with open(root / n, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data.append(np.asarray(batch[b"data"], dtype=np.uint8))
        labels += list(batch[b"labels"])
    x = torch.from_numpy(np.concatenate(data)).reshape(-1, 3, 32, 32).float().div_(255)
    mean, std = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return (x - mean) / std, torch.tensor(labels)


def _download(data_path: str) -> None:
    """Fetch the official files into ``data_path`` (users with internet); offline, nothing happens."""
    import torchvision

    try:
        torchvision.datasets.CIFAR10(data_path, train=True, download=True)
    except (OSError, RuntimeError, ValueError):  # no network, or a partial / corrupt download
        pass


@DATASETS.register("cifar10")
def cifar10(o: DataOptions) -> DataBundle:
    return tensor_bundle(load_cifar10(o.data_path, True), load_cifar10(o.data_path, False), o, 10, 3)
