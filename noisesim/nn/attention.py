"""Attention with its two matrix products as modules, so that ``prepare`` instruments them.

``Attention`` computes what ``F.scaled_dot_product_attention`` computes,

    out = softmax(q kᵀ · scale + mask) v,      scale = 1/√d_head by default,

with ``q kᵀ`` (the scores, fan-in D = d_head) and ``p v`` (the mix, fan-in D = the key length S)
as :class:`~noisesim.nn.matmul.Matmul` modules. ``MultiheadAttention`` is a drop-in for
``nn.MultiheadAttention`` (same arguments, same outputs, same state after ``from_torch``) whose
input projections are three ``nn.Linear`` (``q_proj``, ``k_proj``, ``v_proj``; the packed
``in_proj_weight`` split in three), whose output projection is ``out_proj`` and whose products
are an ``Attention``. ``prepare`` swaps every ``nn.MultiheadAttention`` for it before it
instruments the layers, so a transformer's MACs are all simulated: 4·E² per token for the
projections plus 2·L·S·E per sequence for the products (Vaswani et al. 2017, "Attention is all
you need"). ``to_torch`` packs the weights back.

PyTorch's fused fast paths (``nn.TransformerEncoderLayer`` in eval mode, nested tensors) would read
the packed weights directly; this module says ``_qkv_same_embed_dim = False``, which keeps them off
(``in_proj_weight`` / ``in_proj_bias`` exist as read-only stacked copies for code that inspects them).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from noisesim.nn.matmul import Matmul


def _additive(mask: Optional[torch.Tensor], dtype: torch.dtype, allowed: bool) -> Optional[torch.Tensor]:
    """A mask as an additive float mask; a boolean mask marks allowed positions (``allowed``) or
    forbidden ones (``not allowed``, the ``nn.MultiheadAttention`` convention)."""
    if mask is None or mask.is_floating_point():
        return mask
    forbidden = ~mask if allowed else mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(forbidden, float("-inf"))


class Attention(nn.Module):
    """softmax(q kᵀ · scale + mask) v with the products ``scores`` and ``mix`` as Matmul modules.

    ``forward`` takes the arguments of ``F.scaled_dot_product_attention`` (a boolean
    ``attn_mask`` marks positions that take part; dropout applies whenever ``dropout_p`` > 0,
    as in the functional form)."""

    def __init__(self):
        super().__init__()
        self.scores = Matmul()
        self.mix = Matmul()

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                attn_mask: Optional[torch.Tensor] = None, dropout_p: float = 0.0, is_causal: bool = False,
                scale: Optional[float] = None, enable_gqa: bool = False) -> torch.Tensor:
        return self.attend(query, key, value, _additive(attn_mask, query.dtype, allowed=True), dropout_p,
                           is_causal, scale, enable_gqa)[0]

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor] = None,
               dropout_p: float = 0.0, is_causal: bool = False, scale: Optional[float] = None,
               enable_gqa: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(output, attention probabilities); ``mask`` is additive (float)."""
        if enable_gqa and k.dim() > 2 and k.size(-3) != q.size(-3):
            groups = q.size(-3) // k.size(-3)
            k, v = k.repeat_interleave(groups, -3), v.repeat_interleave(groups, -3)
        scale = 1 / math.sqrt(q.size(-1)) if scale is None else scale
        s = self.scores(q, k.transpose(-2, -1)) * scale
        if is_causal:
            causal = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool, device=q.device).tril()
            s = s.masked_fill(~causal, float("-inf"))
        if mask is not None:
            s = s + mask
        p = torch.softmax(s, dim=-1)
        if dropout_p > 0:
            p = F.dropout(p, dropout_p)
        return self.mix(p, v), p


class MultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` with separate Linear projections and an :class:`Attention`."""

    _qkv_same_embed_dim = False  # PyTorch's fused paths read packed weights: keep them off

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: Optional[int] = None,
                 vdim: Optional[int] = None, batch_first: bool = False, device=None, dtype=None):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        kw = dict(device=device, dtype=dtype)
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.kdim, self.vdim = kdim or embed_dim, vdim or embed_dim
        self.dropout, self.batch_first, self.add_zero_attn = dropout, batch_first, add_zero_attn
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias, **kw)
        self.k_proj = nn.Linear(self.kdim, embed_dim, bias, **kw)
        self.v_proj = nn.Linear(self.vdim, embed_dim, bias, **kw)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias, **kw)
        self.bias_k = nn.Parameter(torch.zeros(1, 1, embed_dim, **kw)) if add_bias_kv else None
        self.bias_v = nn.Parameter(torch.zeros(1, 1, embed_dim, **kw)) if add_bias_kv else None
        self.attention = Attention()

    @property
    def in_proj_weight(self) -> torch.Tensor:
        """The three projection weights stacked as ``nn.MultiheadAttention`` packs them (a copy)."""
        return torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])

    @property
    def in_proj_bias(self) -> Optional[torch.Tensor]:
        """The three projection biases stacked (a copy), or None without biases."""
        biases = [self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]
        return None if biases[0] is None else torch.cat(biases)

    # -- conversion ----------------------------------------------------------------
    @classmethod
    @torch.no_grad()
    def from_torch(cls, mha: nn.MultiheadAttention) -> "MultiheadAttention":
        w = mha.in_proj_weight if mha._qkv_same_embed_dim else None
        ref = w if w is not None else mha.q_proj_weight
        new = cls(mha.embed_dim, mha.num_heads, mha.dropout, mha.in_proj_bias is not None, mha.bias_k is not None,
                  mha.add_zero_attn, mha.kdim, mha.vdim, mha.batch_first, ref.device, ref.dtype)
        weights = w.chunk(3) if w is not None else (mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight)
        biases = mha.in_proj_bias.chunk(3) if mha.in_proj_bias is not None else (None,) * 3
        for proj, wt, b in zip((new.q_proj, new.k_proj, new.v_proj), weights, biases):
            proj.weight.copy_(wt)
            if b is not None:
                proj.bias.copy_(b)
        new.out_proj.load_state_dict(mha.out_proj.state_dict())
        if mha.bias_k is not None:
            new.bias_k.copy_(mha.bias_k)
            new.bias_v.copy_(mha.bias_v)
        return new.train(mha.training)

    @torch.no_grad()
    def to_torch(self) -> nn.MultiheadAttention:
        w = self.q_proj.weight
        mha = nn.MultiheadAttention(self.embed_dim, self.num_heads, self.dropout, self.q_proj.bias is not None,
                                    self.bias_k is not None, self.add_zero_attn, self.kdim, self.vdim,
                                    self.batch_first, device=w.device, dtype=w.dtype)
        projections = (self.q_proj, self.k_proj, self.v_proj)
        if mha._qkv_same_embed_dim:
            mha.in_proj_weight.copy_(torch.cat([p.weight for p in projections]))
        else:
            for name, p in zip(("q_proj_weight", "k_proj_weight", "v_proj_weight"), projections):
                getattr(mha, name).copy_(p.weight)
        if mha.in_proj_bias is not None:
            mha.in_proj_bias.copy_(torch.cat([p.bias for p in projections]))
        mha.out_proj.load_state_dict(self.out_proj.state_dict())
        if self.bias_k is not None:
            mha.bias_k.copy_(self.bias_k)
            mha.bias_v.copy_(self.bias_v)
        return mha.train(self.training)

    # -- forward ---------------------------------------------------------------------
    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: Optional[torch.Tensor] = None, need_weights: bool = True,
                attn_mask: Optional[torch.Tensor] = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        batched = query.dim() == 3
        if not batched:  # (L, E): one sequence
            query, key, value = (x.unsqueeze(0) for x in (query, key, value))
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        n, length, _ = query.shape
        h, d = self.num_heads, self.head_dim
        q, k, v = self.q_proj(query), self.k_proj(key), self.v_proj(value)  # (N, L|S, E)
        mask = _additive(attn_mask, q.dtype, allowed=False)
        mask = None if mask is None else mask.view(n, h, *mask.shape[-2:]) if mask.dim() == 3 else mask
        pad = _additive(key_padding_mask, q.dtype, allowed=False)
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.expand(n, 1, -1)], 1)
            v = torch.cat([v, self.bias_v.expand(n, 1, -1)], 1)
            mask, pad = (None if t is None else F.pad(t, (0, 1)) for t in (mask, pad))
        q, k, v = (t.view(n, -1, h, d).transpose(1, 2) for t in (q, k, v))  # (N, H, L|S, d)
        if self.add_zero_attn:
            k, v = (torch.cat([t, t.new_zeros(n, h, 1, d)], 2) for t in (k, v))
            mask, pad = (None if t is None else F.pad(t, (0, 1)) for t in (mask, pad))
        if pad is not None:
            pad = pad.view(n, 1, 1, -1)
            mask = pad if mask is None else mask + pad
        out, p = self.attention.attend(q, k, v, mask, self.dropout if self.training else 0.0,
                                       is_causal and attn_mask is None)
        out = self.out_proj(out.transpose(1, 2).reshape(n, length, self.embed_dim))
        if not batched:
            out, p = out.squeeze(0), p.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, p.mean(dim=-3) if average_attn_weights else p

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"


def decompose_attention(model: nn.Module) -> nn.Module:
    """Replace every ``nn.MultiheadAttention`` of ``model`` (in place) by :class:`MultiheadAttention`;
    returns the model (a new module if ``model`` itself is one)."""
    if isinstance(model, nn.MultiheadAttention):
        return MultiheadAttention.from_torch(model)
    for name, m in list(model.named_modules()):
        if isinstance(m, nn.MultiheadAttention):
            model.set_submodule(name, MultiheadAttention.from_torch(m))
        elif isinstance(m, nn.TransformerEncoder):
            m.use_nested_tensor = False  # the nested-tensor path reads the packed projection weights
    return model
