"""Modules whose matrix products happen inside a function that ``torch.fx`` cannot see into.

torchvision's Swin attention (``ShiftedWindowAttention`` and its V2) calls ``shifted_window_attention``, a
function fx treats as one opaque call, which runs ``F.linear(x, self.qkv.weight, ...)``,
``F.linear(x, self.proj.weight, ...)`` and two activation products (q kᵀ and p v) itself: its ``qkv`` and
``proj`` Linear children would be instrumented but never called. ``route_products(model)`` gives every such
module two ``Matmul`` children (``scores``, ``mix``) and runs its forward under a ``TorchFunctionMode`` that

* sends ``F.linear(x, w, b)`` whose ``w`` is a child's weight (and ``b`` its bias) to that child, and
* sends the k-th ``matmul`` / ``@`` of the forward to the k-th of those Matmul children,

so that after ``prepare`` the projections and both products are simulated layers. The arithmetic is the
function's own; only who computes each product changes (with everything off the outputs are the float
model's, a test checks).
"""
from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from noisesim.nn.matmul import Matmul

_MATMULS = (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__)


class _Route(TorchFunctionMode):
    """Inside it, ``F.linear`` on a child's weight is that child and the k-th matmul is ``products[k]``."""

    def __init__(self, module: nn.Module, products: list[Matmul]):
        super().__init__()
        self.linears = {id(m.weight): m for m in module.children() if isinstance(getattr(m, "weight", None),
                                                                                  torch.Tensor)}
        self.products, self.calls = products, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
            b = args[2] if len(args) > 2 else kwargs.get("bias")
            child = self.linears.get(id(w))
            if child is not None and (b is None) == (child.bias is None):
                y = child(x)  # a bias other than the child's (Swin V2 zeroes the keys' part): the difference added
                return y if b is child.bias else y + (b - child.bias)
        if func in _MATMULS and len(args) == 2 and not kwargs and self.calls < len(self.products):
            self.calls += 1
            return self.products[self.calls - 1](*args)
        return func(*args, **kwargs)


def _routed(base: type) -> type:
    """``base`` whose forward runs under :class:`_Route` with its ``scores`` and ``mix`` products."""

    class Routed(base):
        def forward(self, *args, **kwargs):
            with _Route(self, [self.scores, self.mix]):
                return super().forward(*args, **kwargs)

    Routed.__name__, Routed.__qualname__ = base.__name__, base.__qualname__
    return Routed


def route_products(model: nn.Module) -> nn.Module:
    """Rewrite (in place) every module of a known class whose products a function computes; returns ``model``."""
    swin = sys.modules.get("torchvision.models.swin_transformer")
    if swin is None:
        return model
    classes: dict[type, type] = {}
    for m in model.modules():
        if isinstance(m, swin.ShiftedWindowAttention) and not hasattr(m, "scores"):  # V2 derives from it
            m.scores, m.mix = Matmul(), Matmul()
            if type(m) not in classes:
                classes[type(m)] = _routed(type(m))
            m.__class__ = classes[type(m)]
    return model
