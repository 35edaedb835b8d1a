"""Both activation products of Hugging Face BERT self-attention as instrumentable ``Matmul`` modules.

``instrument_bert_attention(model)`` rewrites every ``BertSelfAttention`` of any Hugging Face BERT-family
model (in place) so that softmax(Q K^T / sqrt(d)) and P V go through ``noisesim.nn.Matmul`` modules
(``scores`` and ``context``); after ``noisesim.prepare`` every Linear and both attention matmuls of every
layer are simulated. Attention must be eager (``attn_implementation="eager"``).
"""
from __future__ import annotations

import torch
from torch import nn

from noisesim.nn.matmul import Matmul


def _attention_class():
    from transformers.models.bert.modeling_bert import BertSelfAttention

    class SimBertSelfAttention(BertSelfAttention):
        """Eager self-attention whose two activation products are ``Matmul`` modules (encoder only)."""

        def forward(self, hidden_states, attention_mask=None, past_key_values=None, **kwargs):
            shape = (*hidden_states.shape[:-1], -1, self.attention_head_size)
            q = self.query(hidden_states).view(shape).transpose(1, 2)
            k = self.key(hidden_states).view(shape).transpose(1, 2)
            v = self.value(hidden_states).view(shape).transpose(1, 2)
            scores = self.scores(q, k.transpose(2, 3)) * self.scaling
            if attention_mask is not None:
                if attention_mask.dtype == torch.bool:
                    scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
                else:
                    scores = scores + attention_mask
            probs = self.dropout(torch.softmax(scores, dim=-1))
            out = self.context(probs, v).transpose(1, 2).reshape(*hidden_states.shape[:-1], -1)
            return out, probs

    return SimBertSelfAttention


def instrument_bert_attention(model: nn.Module) -> nn.Module:
    """Swap every BertSelfAttention of ``model`` (in place) for one with ``scores`` / ``context`` Matmuls."""
    from transformers.models.bert.modeling_bert import BertSelfAttention

    cls = _attention_class()
    for m in list(model.modules()):
        if type(m) is BertSelfAttention:
            m.__class__ = cls
            m.scores, m.context = Matmul(), Matmul()
    return model
