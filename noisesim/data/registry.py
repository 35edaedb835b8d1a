"""Data sets by name: batches for training / calibration and for evaluation.

Every loader reads the real on-disk format and fails with a one-line
``DataNotFoundError`` that says where it looked and how to get the data.
"""
from __future__ import annotations

import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import torch

from noisesim.data.criteo import read_criteo, write_synthetic_criteo
from noisesim.data.fashion_mnist import DataNotFoundError, load_fashion_mnist
from noisesim.data.samples import IMAGENET_MEAN, IMAGENET_STD, load_imagenet_samples
from noisesim.data.tensors import TensorBatches
from noisesim.train.tasks import BinaryClassification, Classification

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@dataclass
class DataBundle:
    """Batches of ``(inputs, targets)``; ``train`` is reshuffled on every pass."""

    train: Iterable
    val: Iterable
    num_classes: int
    in_channels: int
    task: Any


def _index(inputs: Any, idx: torch.Tensor) -> Any:
    """Rows ``idx`` of a tensor, a tuple of tensors or a list (e.g. of texts)."""
    if isinstance(inputs, tuple):
        return tuple(t[idx] for t in inputs)
    if isinstance(inputs, list):
        return [inputs[i] for i in idx.tolist()]
    return inputs[idx]


def _subset(inputs: Any, y: torch.Tensor, n: Optional[int], seed: int):
    """A fixed seeded random subset of ``n`` samples (everything when ``n`` is None or too large)."""
    if n is None or n >= len(y):
        return inputs, y
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:n]
    return _index(inputs, idx), y[idx]


def _tensor_bundle(train, test, train_batch_size, val_batch_size, train_subset, val_subset, seed, classes,
                   channels, task=None):
    gen = torch.Generator().manual_seed(seed)
    train = _subset(*train, train_subset, seed)
    full_batch = len(train[1]) >= train_batch_size  # a set smaller than one batch is one (smaller) batch
    return DataBundle(TensorBatches(*train, train_batch_size, shuffle=True, generator=gen, drop_last=full_batch),
                      TensorBatches(*_subset(*test, val_subset, seed + 1), val_batch_size), classes, channels,
                      task or Classification())


def _cifar10(data_path: Optional[str], train: bool):
    """The python version of CIFAR-10: pickled dicts with b"data" (N, 3072 uint8) and b"labels"."""
    root = Path(data_path or "") / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    if not data_path or not all((root / n).is_file() for n in names):
        raise DataNotFoundError(
            f"CIFAR-10 batches not found in {root}; pass --data_path DIR holding cifar-10-batches-py "
            "(torchvision.datasets.CIFAR10(DIR, download=True) fetches it)")
    data, labels = [], []
    for n in names:
        with open(root / n, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data.append(np.asarray(batch[b"data"], dtype=np.uint8))
        labels += list(batch[b"labels"])
    x = torch.from_numpy(np.concatenate(data)).reshape(-1, 3, 32, 32).float().div_(255)
    mean, std = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return (x - mean) / std, torch.tensor(labels)


def _lite(t: torch.Tensor) -> torch.Tensor:
    return (t * 255 - 127) / 128


def _imagenet(data_path: Optional[str], split: str, batch_size: int, input_size: int, shuffle: bool,
              subset: Optional[int], seed: int, workers: int, normalization: str):
    from torchvision import datasets, transforms

    root = Path(data_path or "") / split
    if not data_path or not root.is_dir():
        raise DataNotFoundError(f"ImageNet {split} folder not found at {root}; pass --data_path DIR with "
                                f"DIR/{split}/<wnid>/*.JPEG (the ILSVRC2012 layout used by ImageFolder)")
    resize = int(round(input_size / 0.875))
    norm = transforms.Lambda(_lite) if normalization == "lite" else transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    tf = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(input_size), transforms.ToTensor(), norm])
    ds = datasets.ImageFolder(str(root), tf)
    if subset is not None and subset < len(ds):
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:subset].tolist()
        ds = torch.utils.data.Subset(ds, idx)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                                       generator=torch.Generator().manual_seed(seed), drop_last=shuffle)


DATASETS = ("fashion_mnist", "cifar10", "imagenet", "imagenet_samples", "rotten_tomatoes", "sst2", "mnli",
            "mnli_mismatched", "criteo", "criteo_synthetic")


def _criteo(path: Path, train_batch_size, val_batch_size, train_subset, val_subset, seed) -> DataBundle:
    """The last 10% of the lines are the test split (the Kaggle test file has no labels)."""
    inputs, labels = read_criteo(path)
    n_test = max(1, len(labels) // 10)
    train = (tuple(t[:-n_test] for t in inputs), labels[:-n_test])
    test = (tuple(t[-n_test:] for t in inputs), labels[-n_test:])
    return _tensor_bundle(train, test, train_batch_size, val_batch_size, train_subset, val_subset, seed, 1, 0,
                          BinaryClassification())


def build_data(dataset: str, data_path: Optional[str] = None, train_batch_size: int = 64,
               val_batch_size: int = 256, train_subset: Optional[int] = None, seed: int = 0,
               val_subset: Optional[int] = None, input_size: int = 224, workers: int = 2,
               normalization: str = "imagenet", tokenizer_name: Optional[str] = None) -> DataBundle:
    """Load ``dataset``; ``train_subset`` / ``val_subset`` keep fixed seeded random subsets."""
    if dataset == "fashion_mnist":
        return _tensor_bundle(load_fashion_mnist("train", data_path), load_fashion_mnist("test", data_path),
                              train_batch_size, val_batch_size, train_subset, val_subset, seed, 10, 1)
    if dataset == "cifar10":
        return _tensor_bundle(_cifar10(data_path, True), _cifar10(data_path, False), train_batch_size,
                              val_batch_size, train_subset, val_subset, seed, 10, 3)
    if dataset == "imagenet":
        train = _imagenet(data_path, "train", train_batch_size, input_size, True, train_subset, seed, workers,
                          normalization)
        val = _imagenet(data_path, "val", val_batch_size, input_size, False, val_subset, seed + 1, workers,
                        normalization)
        return DataBundle(train, val, 1000, 3, Classification())
    if dataset == "imagenet_samples":  # the same few labelled photos serve for calibration/training and test
        samples = load_imagenet_samples(data_path, input_size, normalization)
        return _tensor_bundle(samples, samples, train_batch_size, val_batch_size, train_subset, val_subset, seed,
                              1000, 3)
    if dataset == "rotten_tomatoes":
        from noisesim.data.sentences import load_rotten_tomatoes, tokenize
        from noisesim.models.minilm import tokenizer

        tok = tokenizer()
        train = load_rotten_tomatoes("train", data_path, train_subset or 6000, seed)
        test = load_rotten_tomatoes("test", data_path, val_subset, seed + 1)
        return _tensor_bundle((tokenize(train[0], tok), train[1]), (tokenize(test[0], tok), test[1]),
                              train_batch_size, val_batch_size, None, None, seed, 2, 0)
    if dataset in ("sst2", "mnli", "mnli_mismatched"):
        from noisesim.data.glue import read_glue, tokenize_glue
        from noisesim.models.bert import checkpoint_for, load_tokenizer

        tok = load_tokenizer(checkpoint_for(dataset, tokenizer_name))
        train, test = (_subset(*read_glue(dataset, split, data_path), n, s)
                       for split, n, s in (("train", train_subset, seed), ("dev", val_subset, seed + 1)))
        return _tensor_bundle((tokenize_glue(train[0], tok), train[1]), (tokenize_glue(test[0], tok), test[1]),
                              train_batch_size, val_batch_size, None, None, seed, 2 if dataset == "sst2" else 3, 0)
    if dataset == "criteo":
        return _criteo(Path(data_path or ".") / "train.txt", train_batch_size, val_batch_size, train_subset,
                       val_subset, seed)
    if dataset == "criteo_synthetic":  # generated once into data_path (default: a folder in the system temp)
        root = Path(data_path) if data_path else Path(tempfile.gettempdir()) / "noisesim-criteo-synthetic"
        if not (root / "train.txt").is_file():
            write_synthetic_criteo(root / "train.txt", seed=0)
        return _criteo(root / "train.txt", train_batch_size, val_batch_size, train_subset, val_subset, seed)
    raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
