"""How a batch reaches a model: one convention for every task, loader and loop.

A batch is ``(inputs, targets)`` or inputs alone; inputs are a tensor, a tuple of tensors
(positional arguments, e.g. DLRM's dense and sparse features) or a dict (keyword arguments,
e.g. a tokenizer's ``input_ids`` and ``attention_mask``). Hugging Face outputs are reduced to
their ``logits``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


def call_model(model: nn.Module, inputs: Any) -> torch.Tensor:
    """``model(**inputs)`` for a dict, ``model(*inputs)`` for a tuple or list, else ``model(inputs)``."""
    if isinstance(inputs, dict):
        out = model(**inputs)
    elif isinstance(inputs, (tuple, list)):
        out = model(*inputs)
    else:
        out = model(inputs)
    return getattr(out, "logits", out)


def split_batch(batch: Any) -> tuple[Any, Any]:
    """``(inputs, targets)`` from a pair, or ``(batch, None)`` for inputs alone."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    return batch, None


def inputs_and_targets(batch: Any, task: Any = None, teacher: nn.Module | None = None) -> tuple[Any, Any]:
    """(inputs, targets) of a batch; with a ``teacher``, the targets are ``task.pseudo_targets`` of its
    outputs (generated labels) instead of the batch's own."""
    inputs, targets = split_batch(batch)
    if teacher is not None:
        with torch.no_grad():
            targets = task.pseudo_targets(call_model(teacher, inputs))
    return inputs, targets
