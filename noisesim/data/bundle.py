"""What every data loader returns, and the options every loader takes.

A loader is a function ``DataOptions -> DataBundle`` registered by name in
``noisesim.registry.DATASETS`` (see ``noisesim.data.registry.build_data``). Every loader reads
the real on-disk format and fails with a one-line :class:`DataNotFoundError` that says where
it looked and how to get the data.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

import torch

from noisesim.data.tasks import Classification
from noisesim.data.tensors import TensorBatches


class DataNotFoundError(FileNotFoundError):
    """A data set is missing; the message says where it was looked for and how to get it."""


class DataFileError(ValueError):
    """A data file exists but cannot be read (empty, truncated, corrupt or another format); one-line message."""


def error_line(e: Exception) -> str:
    """An error's one line; for an error a DataLoader worker re-raised (its message then holds the worker's
    traceback), the original error's message."""
    lines = [line for line in str(e).splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    if lines[0].startswith("Caught ") and "Original Traceback" in str(e):
        return lines[-1].split(": ", 1)[-1]
    return lines[0]


@dataclass(frozen=True)
class DataOptions:
    """How to load a data set: folder, batch sizes, seeded subsets, image size and normalisation
    (``imagenet`` mean/std or ``lite``: (pixel - 127) / 128), the tokenizer's checkpoint, loader workers."""

    data_path: Optional[str] = None
    train_batch_size: int = 64
    val_batch_size: int = 256
    train_subset: Optional[int] = None
    val_subset: Optional[int] = None
    seed: int = 0
    input_size: int = 224
    normalization: str = "imagenet"
    tokenizer_name: Optional[str] = None
    workers: int = 2


@dataclass
class DataBundle:
    """Batches of ``(inputs, targets)``; ``train`` is reshuffled on every pass. ``train_labels``: False
    when the training inputs carry no labels (targets -1: train on a teacher's predictions)."""

    train: Iterable
    val: Iterable
    num_classes: int
    in_channels: int
    task: Any
    train_labels: bool = True


def _index(inputs: Any, idx: torch.Tensor) -> Any:
    """Rows ``idx`` of a tensor, a tuple of tensors, a dict of tensors or a list (e.g. of texts)."""
    if isinstance(inputs, tuple):
        return tuple(t[idx] for t in inputs)
    if isinstance(inputs, dict):
        return {k: t[idx] for k, t in inputs.items()}
    if isinstance(inputs, list):
        return [inputs[i] for i in idx.tolist()]
    return inputs[idx]


def subset(inputs: Any, y: torch.Tensor, n: Optional[int], seed: int):
    """A fixed seeded random subset of ``n`` samples (everything when ``n`` is None or too large)."""
    if n is None or n >= len(y):
        return inputs, y
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:n]
    return _index(inputs, idx), y[idx]


def text_tokenizer(o: DataOptions, dataset: str):
    """The tokenizer a text data set is read with: ``o.tokenizer_name``, a local folder or a hub id (main.py
    takes it from the model, whose tokenizer it must be)."""
    from transformers import AutoTokenizer

    if o.tokenizer_name is None:
        raise DataNotFoundError(f"{dataset} is text and needs the model's tokenizer: give tokenizer_name (main.py "
                                "takes it from --model)")
    return AutoTokenizer.from_pretrained(o.tokenizer_name, local_files_only=Path(o.tokenizer_name).is_dir())


def tensor_bundle(train: tuple, test: tuple, o: DataOptions, classes: int, channels: int,
                  task: Any = None) -> DataBundle:
    """A bundle of in-memory ``(inputs, targets)`` pairs with ``o``'s seeded subsets and batch sizes."""
    gen = torch.Generator().manual_seed(o.seed)
    train = subset(*train, o.train_subset, o.seed)
    full_batch = len(train[1]) >= o.train_batch_size  # a set smaller than one batch is one (smaller) batch
    return DataBundle(TensorBatches(*train, o.train_batch_size, shuffle=True, generator=gen, drop_last=full_batch),
                      TensorBatches(*subset(*test, o.val_subset, o.seed + 1), o.val_batch_size), classes, channels,
                      task or Classification())
