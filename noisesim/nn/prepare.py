"""The module swap: ``prepare(model, config)`` instruments every matmul layer of any nn.Module.

Conv1d, Conv2d, Linear and the ``Matmul`` / ``Einsum`` modules become SimConv, SimLinear,
SimMatmul and SimEinsum, named by their module path. Before the swap, every
``nn.MultiheadAttention`` is decomposed into its projections and two products
(``noisesim.nn.attention``), Hugging Face models get GPT-2's ``Conv1D`` as Linear and their attention
products as modules (``noisesim.nn.hf_attention``), torchvision's Swin attention has its products routed to
modules (``noisesim.nn.routed``), and matrix products written as function calls in a module's
``forward`` (``torch.matmul``, ``@``, ``bmm``, ``einsum``, ``F.scaled_dot_product_attention``)
become modules (``noisesim.nn.functional``). What is still left out is named by the coverage
report that ``noisesim.calibrate`` measures (``noisesim.coverage``). The model is deep-copied unless
``inplace=True``. Per-layer exceptions come from ``config.overrides`` and ``config.ignore``
(regexes on the module path, or ``first`` / ``last`` for the first and last matmul layer
in registration order).
"""
from __future__ import annotations

import copy
from typing import Optional

from torch import nn

from noisesim.config import SimConfig
from noisesim.nn.attention import MultiheadAttention, decompose_attention
from noisesim.nn.base import SimLayer
from noisesim.nn.conv import SimConv
from noisesim.nn.fold import fold_batchnorm
from noisesim.nn.functional import instrument_functional
from noisesim.nn.hf_attention import instrument_transformers
from noisesim.nn.linear import SimLinear
from noisesim.nn.matmul import Einsum, Matmul, SimEinsum, SimMatmul
from noisesim.nn.residual import quantize_residuals
from noisesim.nn.routed import route_products

SIM_CLASSES = {nn.Conv1d: SimConv, nn.Conv2d: SimConv, nn.Linear: SimLinear, Matmul: SimMatmul,
               Einsum: SimEinsum}


def _targets(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, tuple(SIM_CLASSES))]


def _sim_class(m: nn.Module) -> type:
    for cls, sim in SIM_CLASSES.items():
        if isinstance(m, cls):
            return sim
    raise TypeError(type(m))


def prepare(model: nn.Module, config: Optional[SimConfig] = None, inplace: bool = False) -> nn.Module:
    """Return ``model`` with simulated quantizers and noise on every matmul layer.

    Steps: copy (unless ``inplace``) -> fold conv+BN (``config.fold_bn``) -> reroute
    residual adds / concatenations through quantizers (``config.quantize_residual``;
    the result is a torch.fx GraphModule) -> decompose ``nn.MultiheadAttention`` -> Hugging Face
    Conv1D and attention, Swin's routed products -> turn functional matrix products into modules
    -> swap layers. Run ``noisesim.calibrate``
    before evaluating a model with activation quantizers (it also measures the coverage).
    """
    config = config or SimConfig()
    if not inplace:
        model = copy.deepcopy(model)
    if config.fold_bn:
        fold_batchnorm(model)
    if config.quantize_residual:
        model = quantize_residuals(model, config)
    model = decompose_attention(model)
    model = instrument_transformers(model)
    model = route_products(model)
    model, _ = instrument_functional(model)
    for m in model.modules():
        if isinstance(m, nn.TransformerEncoderLayer):
            # its eval "fast path" reads linear1/linear2 weights directly, bypassing the simulation;
            # this flag is only consulted to decide whether the fast path may run
            m.activation_relu_or_gelu = 0
    targets = _targets(model)
    if not targets:
        raise ValueError(f"{type(model).__name__} has no Conv1d, Conv2d, Linear, Matmul or Einsum layer to instrument")
    first, last = targets[0][0], targets[-1][0]
    for index, (name, mod) in enumerate(targets):
        aliases = tuple(a for a, n in (("first", first), ("last", last)) if n == name)
        if config.ignores(name, aliases):
            continue
        sim = _sim_class(mod).from_float(mod, config.for_layer(name, aliases), name=name or type(mod).__name__,
                                         layer_index=index)
        if name == "":
            return sim
        model.set_submodule(name, sim)
    return model


def sim_layers(model: nn.Module) -> list[SimLayer]:
    """The instrumented layers of a prepared model, in registration order."""
    return [m for m in model.modules() if isinstance(m, SimLayer)]


def to_float(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Replace every instrumented layer by its float module and every decomposed attention by an
    ``nn.MultiheadAttention`` (BN stays folded; functional products stay modules)."""
    if not inplace:
        model = copy.deepcopy(model)
    if isinstance(model, SimLayer):
        return model.to_float()
    for name, m in list(model.named_modules()):
        if isinstance(m, SimLayer):
            model.set_submodule(name, m.to_float())
    for name, m in list(model.named_modules()):
        if isinstance(m, MultiheadAttention):
            if name == "":
                return m.to_torch()
            model.set_submodule(name, m.to_torch())
    return model
