"""Matrix products written as function calls inside ``forward`` become modules ``prepare`` instruments.

Each module of the model is traced on its own with ``torch.fx`` (its children kept as opaque
calls), and every ``torch.matmul`` / ``a @ b`` / ``torch.bmm`` / ``torch.mm`` / ``a.matmul(b)``
/ ``a.bmm(b)`` becomes a :class:`~noisesim.nn.matmul.Matmul` child, every two-operand
``torch.einsum`` an :class:`~noisesim.nn.matmul.Einsum` and every
``F.scaled_dot_product_attention`` an :class:`~noisesim.nn.attention.Attention` (named
``matmul_0``, ``einsum_0``, ``sdpa_0``, ... inside that module). Only modules that contain such a
call are replaced (by the rewritten ``GraphModule``, which keeps their children and parameters
under the same names); a module that fx cannot trace (data-dependent control flow) is left as
it is, and the coverage report (``noisesim.coverage``) names what it computes uninstrumented.
PyTorch's and noisesim's own module classes are not traced (their products are modules already,
or, for ``nn.MultiheadAttention``, decomposed by ``prepare`` first). ``F.linear`` / ``F.conv2d`` called
on a module's own parameters are not rewritten: they show up in the coverage report.
"""
from __future__ import annotations

import operator
from typing import Optional

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from noisesim.nn.attention import Attention
from noisesim.nn.matmul import Einsum, Matmul

_MATMUL_FUNCTIONS = (torch.matmul, operator.matmul, torch.bmm, torch.mm)
_MATMUL_METHODS = ("matmul", "bmm", "mm", "__matmul__")


class _ChildrenOpaque(torch.fx.Tracer):
    """Trace one module's own forward: every child module is a single opaque call."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return True


def _replacement(node: torch.fx.Node) -> Optional[tuple[str, nn.Module, tuple]]:
    """(name prefix, module, operands) for a node that is a functional matrix product, else None."""
    if node.op == "call_function" and node.target in _MATMUL_FUNCTIONS and len(node.args) == 2 and not node.kwargs:
        return "matmul", Matmul(), node.args
    if node.op == "call_method" and node.target in _MATMUL_METHODS and len(node.args) == 2 and not node.kwargs:
        return "matmul", Matmul(), node.args
    if node.op == "call_function" and node.target is torch.einsum and not node.kwargs:
        equation, *operands = node.args
        if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
            operands = list(operands[0])
        if isinstance(equation, str) and len(operands) == 2:
            return "einsum", Einsum(equation), tuple(operands)
    if node.op == "call_function" and node.target is F.scaled_dot_product_attention:
        return "sdpa", Attention(), node.args
    return None


def _rewrite(module: nn.Module) -> Optional[torch.fx.GraphModule]:
    """``module`` with its functional products as child modules, or None (none found, or not traceable)."""
    try:
        graph = _ChildrenOpaque().trace(module)
    except Exception:  # data-dependent control flow, unsupported Python: leave the module as it is
        return None
    found = [(node, r) for node in graph.nodes if (r := _replacement(node)) is not None]
    if not found:
        return None
    counts: dict[str, int] = {}
    for node, (prefix, mod, args) in found:
        name = f"{prefix}_{counts.get(prefix, 0)}"
        while hasattr(module, name):
            name += "_"
        counts[prefix] = counts.get(prefix, 0) + 1
        module.add_module(name, mod)  # the GraphModule takes the children its graph calls from ``module``
        with graph.inserting_after(node):
            call = graph.call_module(name, tuple(args), dict(node.kwargs) if prefix == "sdpa" else {})
        node.replace_all_uses_with(call)
        graph.erase_node(node)
    gm = torch.fx.GraphModule(module, graph, class_name=type(module).__name__)
    gm.graph.lint()
    gm.recompile()
    return gm.train(module.training)


def instrument_functional(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """Rewrite every module of ``model`` (in place) whose own forward calls a functional matrix product;
    returns the model (a new one if the root itself was rewritten) and the rewritten modules' names."""
    rewritten = []
    for name, m in list(model.named_modules()):
        if type(m).__module__.startswith(("torch.nn.", "noisesim.")):
            continue  # PyTorch's own modules (MultiheadAttention is decomposed before) and noisesim's
        gm = _rewrite(m)
        if gm is None:
            continue
        if name == "":
            model = gm
        else:
            try:
                model.set_submodule(name, gm)
            except AttributeError:  # its parent was rewritten and does not call it in forward
                continue
        rewritten.append(name)
    return model, rewritten
