"""Hugging Face BERT sequence classifiers (e.g. bert-base fine-tuned on MNLI or SST-2).

``--checkpoint_path`` names a local folder or a hub id; without it the defaults are
``textattack/bert-base-uncased-MNLI`` and ``textattack/bert-base-uncased-SST-2`` (downloaded
by users with internet). Attention is made eager and instrumented (see
``instrument_bert_attention``), so every Linear and both attention matmuls are simulated.
"""
from __future__ import annotations

from torch import nn

from noisesim.data.glue import checkpoint_for
from noisesim.models.minilm import instrument_bert_attention

__all__ = ["LogitsOnly", "load_bert_classifier", "checkpoint_for"]


class LogitsOnly(nn.Module):
    """Calls a Hugging Face classifier with keyword inputs and returns its logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


def load_bert_classifier(name_or_path: str, num_labels: int) -> nn.Module:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(name_or_path, attn_implementation="eager")
    if model.config.num_labels != num_labels:
        raise ValueError(f"checkpoint {name_or_path} predicts {model.config.num_labels} labels; the task has "
                         f"{num_labels}")
    return LogitsOnly(instrument_bert_attention(model)).eval()
