"""Batch-norm folding: conv -> BN (in eval mode) becomes one conv with

    w' = w * gamma / sqrt(var + eps)        (per output channel)
    b' = (b - mean) * gamma / sqrt(var + eps) + beta

computed by PyTorch's ``torch.nn.utils.fusion.fuse_conv_bn_weights``.

Conv -> BN pairs are found on the traced graph (``torch.fx``): a BN whose only input is a
conv used nowhere else. Models that cannot be traced fall back to the registration order
of children (a BN registered right after a conv with as many channels), with a warning.
"""
from __future__ import annotations

import warnings

import torch
import torch.fx
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

_CONVS = (nn.Conv1d, nn.Conv2d)
_BNS = (nn.BatchNorm1d, nn.BatchNorm2d)


@torch.no_grad()
def fold_bn_into(conv: nn.Module, bn: nn.Module) -> None:
    """Fold ``bn`` (eval statistics) into ``conv`` in place (the conv keeps its parameters' requires_grad)."""
    w, b = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                bn.weight if bn.affine else None, bn.bias if bn.affine else None)
    trainable = conv.weight.requires_grad
    conv.weight = nn.Parameter(w.detach(), requires_grad=trainable)
    conv.bias = nn.Parameter(b.detach(), requires_grad=trainable)


def _pairs_from_graph(model: nn.Module) -> list[tuple[str, str]]:
    gm = torch.fx.symbolic_trace(model)
    mods = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in gm.graph.nodes:
        if node.op != "call_module" or not isinstance(mods.get(node.target), _BNS):
            continue
        src = node.args[0] if node.args else None
        if (isinstance(src, torch.fx.Node) and src.op == "call_module"
                and isinstance(mods.get(src.target), _CONVS) and len(src.users) == 1
                and calls[src.target] == 1 and calls[node.target] == 1
                and mods[src.target].out_channels == mods[node.target].num_features):
            pairs.append((src.target, node.target))
    return pairs


def _pairs_from_order(model: nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for parent_name, parent in model.named_modules():
        children = list(parent.named_children())
        for (a_name, a), (b_name, b) in zip(children, children[1:]):
            if isinstance(a, _CONVS) and isinstance(b, _BNS) and a.out_channels == b.num_features:
                prefix = f"{parent_name}." if parent_name else ""
                pairs.append((prefix + a_name, prefix + b_name))
    return pairs


def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv name, BN name) pairs that can be folded."""
    try:
        return _pairs_from_graph(model)
    except Exception as e:  # untraceable control flow: fall back to module order
        warnings.warn(f"BN folding: {type(model).__name__} is not traceable ({type(e).__name__}); "
                      "pairing conv and BN by registration order", stacklevel=3)
        return _pairs_from_order(model)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every conv -> BN pair of ``model`` in place (BN becomes Identity); returns the count."""
    if not any(isinstance(m, _BNS) for m in model.modules()):
        return 0
    pairs = conv_bn_pairs(model)
    for conv_name, bn_name in pairs:
        fold_bn_into(model.get_submodule(conv_name), model.get_submodule(bn_name))
        model.set_submodule(bn_name, nn.Identity())
    return len(pairs)
