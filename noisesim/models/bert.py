"""Hugging Face BERT sequence classifiers (e.g. bert-base fine-tuned on MNLI or SST-2).

``--checkpoint_path`` names a local folder or a hub id; without it the defaults are
``textattack/bert-base-uncased-MNLI`` and ``textattack/bert-base-uncased-SST-2`` (downloaded
by users with internet). Attention is made eager and instrumented (see
``instrument_bert_attention``), so every Linear and both attention matmuls are simulated.
"""
from __future__ import annotations

from typing import Optional

from torch import nn

from noisesim.nn.bert_attention import instrument_bert_attention

# fine-tuned classifiers used when --checkpoint_path names none (model and tokenizer alike)
DEFAULT_CHECKPOINTS = {"mnli": "textattack/bert-base-uncased-MNLI", "mnli_mismatched": "textattack/bert-base-uncased-MNLI",
                       "sst2": "textattack/bert-base-uncased-SST-2"}

__all__ = ["LogitsOnly", "load_bert_classifier", "checkpoint_for"]


def checkpoint_for(dataset: str, checkpoint_path: Optional[str] = None) -> str:
    """The checkpoint (local folder or hub id) of the classifier for a GLUE task: ``checkpoint_path`` or the
    default fine-tuned one; its tokenizer reads the task's sentences."""
    return checkpoint_path or DEFAULT_CHECKPOINTS[dataset]


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
