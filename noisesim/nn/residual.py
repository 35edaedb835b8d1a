"""Optional fake quantization of residual additions and concatenations.

Adds and concatenations live inside ``forward`` methods, not in modules, so the model is
traced with ``torch.fx`` and every ``a + b`` / ``torch.add`` / ``torch.cat`` node is
rerouted through a module that quantizes its result with an activation quantizer. Nodes
that turn out to add non-tensors (shape arithmetic) pass through unchanged at run time.
"""
from __future__ import annotations

import operator

import torch
import torch.fx
from torch import nn

from noisesim.config import SimConfig
from noisesim.quant.fake_quant import FakeQuantize

_ADDS = (operator.add, operator.iadd, torch.add)


class QuantAdd(nn.Module):
    """``act_quant(a + b)``; non-tensor sums pass through."""

    def __init__(self, cfg: SimConfig):
        super().__init__()
        self.act_quant = FakeQuantize(cfg.act_quant(dynamic=False))  # on feature maps: calibrated ranges

    def forward(self, a, b):
        out = a + b
        return self.act_quant(out) if torch.is_tensor(out) and out.is_floating_point() else out


class QuantCat(nn.Module):
    """``act_quant(torch.cat(tensors, dim))``."""

    def __init__(self, cfg: SimConfig, dim: int = 0):
        super().__init__()
        self.dim = dim
        self.act_quant = FakeQuantize(cfg.act_quant(dynamic=False))  # on feature maps: calibrated ranges

    def forward(self, tensors):
        return self.act_quant(torch.cat(tensors, self.dim))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


def quantize_residuals(model: nn.Module, cfg: SimConfig) -> torch.fx.GraphModule:
    """Trace ``model`` and insert QuantAdd / QuantCat modules (named residual_add_i / concat_i)."""
    gm = torch.fx.symbolic_trace(model)
    n_add = n_cat = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function":
            continue
        if node.target in _ADDS and len(node.args) == 2 and all(isinstance(a, torch.fx.Node) for a in node.args):
            name, mod, args = f"residual_add_{n_add}", QuantAdd(cfg), node.args
            n_add += 1
        elif node.target is torch.cat:
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
            name, mod, args = f"concat_{n_cat}", QuantCat(cfg, dim), (node.args[0],)
            n_cat += 1
        else:
            continue
        gm.add_submodule(name, mod)
        with gm.graph.inserting_after(node):
            new = gm.graph.call_module(name, args)
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
    gm.recompile()
    return gm
