"""Tensor helpers shared by quantizers, noise models and layers.

* ``ste(x, value)``: ``value`` in the forward pass, the gradient of ``x`` in the backward pass
  (the straight-through estimator, Bengio et al. 2013); every rounding in noisesim uses it.
* ``along_dim(v, ndim, dim)``: a per-channel vector shaped to broadcast along axis ``dim`` of an
  ``ndim``-dimensional tensor (a one-element vector becomes a scalar; a tensor of more than one
  dimension is taken as already broadcastable, e.g. per-token ranges).
"""
from __future__ import annotations

import torch


def ste(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Forward ``value``, backward identity with respect to ``x``."""
    return x + (value - x).detach()


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity backward."""
    return ste(x, torch.round(x))


def along_dim(v: torch.Tensor, ndim: int, dim: int) -> torch.Tensor:
    """``v`` (one value or one per channel) shaped to broadcast along ``dim`` of an ``ndim`` tensor."""
    if v.numel() == 1:
        return v.reshape(())
    if v.dim() > 1:
        return v
    shape = [1] * ndim
    shape[dim] = -1
    return v.reshape(shape)
