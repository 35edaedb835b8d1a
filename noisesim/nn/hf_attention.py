"""Hugging Face ``transformers`` models: GPT-2's ``Conv1D`` projections and every attention product instrumented.

``instrument_transformers(model)`` (called by ``noisesim.prepare`` on its copy of the model; nothing happens
unless the ``transformers`` package is loaded and the model holds its modules):

* every ``transformers.pytorch_utils.Conv1D`` (GPT-2's projections: y = x W + b with W of shape (in, out))
  becomes the ``nn.Linear`` with weight W^T, the same function, which ``prepare`` then instruments;
* every attention module whose ``forward`` dispatches through transformers' attention interface
  (``ALL_ATTENTION_FUNCTIONS``: Llama-style decoders with grouped-query attention, GPT-2, T5, Whisper, ViT,
  BERT, ...) gets an :class:`~noisesim.nn.attention.Attention` child named ``sdpa``, and every model's
  attention implementation is set to ``"noisesim"``: transformers' own SDPA path runs unchanged (grouped-query
  heads, causal and padding masks in SDPA's boolean form, T5's position bias folded into the mask), with
  ``F.scaled_dot_product_attention`` routed to that child, whose two products (q kᵀ and p v) are
  ``Matmul`` modules and so become simulated layers.

The routing is a ``TorchFunctionMode`` active only inside that attention call, so nothing outside it changes.
"""
from __future__ import annotations

import inspect
import sys

import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from noisesim.nn.attention import Attention

IMPLEMENTATION = "noisesim"
CHILD = "sdpa"


class _RoutedAttention(TorchFunctionMode):
    """Inside it, ``F.scaled_dot_product_attention(...)`` is ``attention(...)``."""

    def __init__(self, attention: Attention):
        super().__init__()
        self.attention = attention

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            return self.attention(*args, **kwargs)
        return func(*args, **kwargs)


def _attention_forward(module: nn.Module, query, key, value, attention_mask, **kwargs):
    """transformers' SDPA attention with the product routed to ``module.sdpa`` (when ``prepare`` added one)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    attention = getattr(module, CHILD, None)
    if not isinstance(attention, Attention):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    with _RoutedAttention(attention):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def _dispatches_attention(cls: type, seen: dict) -> bool:
    """Whether ``cls.forward`` calls transformers' attention interface (read from its source, once per class)."""
    if cls not in seen:
        try:
            seen[cls] = "ALL_ATTENTION_FUNCTIONS" in inspect.getsource(cls.forward)
        except (OSError, TypeError):
            seen[cls] = False
    return seen[cls]


def instrument_transformers(model: nn.Module) -> nn.Module:
    """Rewrite ``model`` in place as described above; returns it."""
    if "transformers" not in sys.modules:
        return model
    from transformers import AttentionInterface, PreTrainedModel
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    from transformers.pytorch_utils import Conv1D

    for name, m in list(model.named_modules()):
        if isinstance(m, Conv1D):
            linear = nn.Linear(*m.weight.shape, bias=m.bias is not None, device=m.weight.device, dtype=m.weight.dtype)
            linear.weight = nn.Parameter(m.weight.detach().t().contiguous(), requires_grad=m.weight.requires_grad)
            if m.bias is not None:
                linear.bias = m.bias
            if name == "":
                return linear
            model.set_submodule(name, linear)
    seen: dict = {}
    attention_modules = [m for m in model.modules() if _dispatches_attention(type(m), seen)]
    if not attention_modules:
        return model
    AttentionInterface.register(IMPLEMENTATION, _attention_forward)
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)
    for m in attention_modules:
        if not hasattr(m, CHILD):
            m.add_module(CHILD, Attention())
    for m in model.modules():
        if isinstance(m, PreTrainedModel):
            m.config._attn_implementation = IMPLEMENTATION
    return model
