"""Batches from in-memory tensors, with batched augmentation for small images."""
from __future__ import annotations

from typing import Callable, Iterator, Optional

import torch


class TensorBatches:
    """Iterate ``(inputs, targets)`` batches of in-memory tensors.

    Faster than a ``DataLoader`` over a ``TensorDataset`` for small images: one index
    per batch instead of one ``__getitem__`` per sample. ``shuffle`` draws a new order
    from ``generator`` on every pass; ``transform`` is applied to each input batch.
    """

    def __init__(self, inputs: torch.Tensor | tuple[torch.Tensor, ...], targets: torch.Tensor, batch_size: int,
                 shuffle: bool = False, transform: Optional[Callable] = None,
                 generator: Optional[torch.Generator] = None, drop_last: bool = False):
        n = len(next(iter(inputs.values()))) if isinstance(inputs, dict) else \
            len(inputs[0]) if isinstance(inputs, tuple) else len(inputs)
        if n != len(targets):
            raise ValueError(f"{n} inputs but {len(targets)} targets")
        self.inputs, self.targets = inputs, targets
        self.batch_size, self.shuffle, self.transform = batch_size, shuffle, transform
        self.generator, self.drop_last = generator, drop_last

    def __len__(self) -> int:
        n = len(self.targets)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.targets)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            if isinstance(self.inputs, dict):
                x = {k: t[idx] for k, t in self.inputs.items()}
            elif isinstance(self.inputs, tuple):
                x = tuple(t[idx] for t in self.inputs)
            else:
                x = self.inputs[idx]
                x = self.transform(x) if self.transform else x
            yield x, self.targets[idx]


def random_crop_flip(pad: int, generator: Optional[torch.Generator] = None) -> Callable:
    """Batched augmentation: random crop after zero padding by ``pad``, random horizontal flip."""

    def transform(x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
        batch = torch.arange(n)[:, None, None, None]
        chan = torch.arange(x.shape[1])[None, :, None, None]
        out = padded[batch, chan, rows, cols]
        flip = torch.rand(n, generator=generator) < 0.5
        out[flip] = out[flip].flip(-1)
        return out

    return transform


class DeviceBatches:
    """Wrap an iterable of batches so that every tensor in it lands on ``device``."""

    def __init__(self, batches, device: torch.device | str):
        self.batches, self.device = batches, torch.device(device)

    def __len__(self) -> int:
        return len(self.batches)

    def _move(self, obj):
        if torch.is_tensor(obj):
            return obj.to(self.device, non_blocking=True)
        if isinstance(obj, dict):
            return {k: self._move(v) for k, v in obj.items()}
        if isinstance(obj, (tuple, list)):
            return type(obj)(self._move(v) for v in obj)
        return obj

    def __iter__(self):
        for batch in self.batches:
            yield self._move(batch) if self.device.type != "cpu" else batch


def peek(batches) -> object:
    """The first batch of ``batches`` without moving its shuffling generator on (so that a look ahead does not
    change the order the training or calibration that follows sees)."""
    inner = getattr(batches, "batches", batches)
    generator = getattr(inner, "generator", None)
    state = generator.get_state() if generator is not None else None
    try:
        for batch in batches:
            return batch
        raise ValueError("the data set gives no batches (fewer examples than one batch?)")
    finally:
        if state is not None:
            generator.set_state(state)


def hold_out(batches: TensorBatches, n: int, seed: int = 0) -> tuple[TensorBatches, TensorBatches]:
    """(the rest, ``n`` held-out samples) of an in-memory training set, split by a seeded permutation; the rest
    keeps the shuffling, augmentation and batch size, the held-out part is neither shuffled nor augmented."""
    total = len(batches.targets)
    if not 0 < n < total:
        raise ValueError(f"cannot hold out {n} of {total} training samples")
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    held, rest = order[:n], order[n:]

    def take(idx):
        x = batches.inputs
        if isinstance(x, dict):
            return {k: t[idx] for k, t in x.items()}
        return tuple(t[idx] for t in x) if isinstance(x, tuple) else x[idx]

    return (TensorBatches(take(rest), batches.targets[rest], batches.batch_size, batches.shuffle, batches.transform,
                          batches.generator, batches.drop_last),
            TensorBatches(take(held), batches.targets[held], batches.batch_size))
