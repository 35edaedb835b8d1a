"""GLUE sentence tasks: SST-2 and MNLI (matched and mismatched), from the GLUE TSV files.

``DIR/SST-2/{train,dev}.tsv`` (columns sentence, label) and
``DIR/MNLI/{train,dev_matched,dev_mismatched}.tsv`` (columns ..., sentence1, sentence2, ...,
gold_label). Without ``data_path``, Hugging Face ``datasets`` downloads GLUE (users with
internet). MNLI labels follow GLUE's order: entailment 0, neutral 1, contradiction 2.
"""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Optional

import torch

from noisesim.data.bundle import DataBundle, DataNotFoundError, DataOptions, subset, tensor_bundle, text_tokenizer
from noisesim.registry import DATASETS

MNLI_LABELS = {"entailment": 0, "neutral": 1, "contradiction": 2}
FILES = {("sst2", "train"): "SST-2/train.tsv", ("sst2", "dev"): "SST-2/dev.tsv",
         ("mnli", "train"): "MNLI/train.tsv", ("mnli", "dev"): "MNLI/dev_matched.tsv",
         ("mnli_mismatched", "train"): "MNLI/train.tsv", ("mnli_mismatched", "dev"): "MNLI/dev_mismatched.tsv"}


def read_glue(task: str, split: str, data_path: Optional[str]) -> tuple[list, torch.Tensor]:
    """``(texts, labels)``: texts are sentences (SST-2) or (premise, hypothesis) pairs (MNLI)."""
    if data_path is None:
        return _from_hub(task, split)
    path = Path(data_path) / FILES[(task, split)]
    if not path.is_file():
        raise DataNotFoundError(f"GLUE file {path} not found; pass --data_path DIR holding the GLUE TSVs "
                                "(SST-2/, MNLI/) or omit it to download GLUE with Hugging Face datasets")
    import pandas as pd  # loads with the first GLUE file, not with the command line

    df = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    if task == "sst2":
        return df["sentence"].tolist(), torch.tensor(df["label"].astype(int).to_numpy())
    df = df[df["gold_label"].isin(list(MNLI_LABELS))]
    return (list(zip(df["sentence1"], df["sentence2"])),
            torch.tensor(df["gold_label"].map(MNLI_LABELS).to_numpy()))


def _from_hub(task: str, split: str) -> tuple[list, torch.Tensor]:
    from datasets import load_dataset

    name = "mnli" if task.startswith("mnli") else "sst2"
    hub_split = {"train": "train", "dev": "validation"}[split]
    if name == "mnli" and split == "dev":
        hub_split = "validation_mismatched" if task == "mnli_mismatched" else "validation_matched"
    try:
        ds = load_dataset("glue", name, split=hub_split)
    except Exception as e:
        raise DataNotFoundError(f"GLUE {name} could not be downloaded ({type(e).__name__}); pass --data_path DIR "
                                "holding the GLUE TSV files") from None
    texts = ds["sentence"] if name == "sst2" else list(zip(ds["premise"], ds["hypothesis"]))
    return list(texts), torch.tensor(ds["label"])


def tokenize_glue(texts: list, tok, max_length: int = 128) -> dict[str, torch.Tensor]:
    if texts and isinstance(texts[0], tuple):
        first, second = zip(*texts)
        enc = tok(list(first), list(second), padding="max_length", truncation=True, max_length=max_length,
                  return_tensors="pt")
    else:
        enc = tok(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}


def _glue(dataset: str, o: DataOptions) -> DataBundle:
    tok = text_tokenizer(o, dataset)
    train, test = (subset(*read_glue(dataset, split, o.data_path), n, s)
                   for split, n, s in (("train", o.train_subset, o.seed), ("dev", o.val_subset, o.seed + 1)))
    whole = dataclasses.replace(o, train_subset=None, val_subset=None)  # subsets taken above
    return tensor_bundle((tokenize_glue(train[0], tok), train[1]), (tokenize_glue(test[0], tok), test[1]), whole,
                         2 if dataset == "sst2" else 3, 0)


for _name in ("sst2", "mnli", "mnli_mismatched"):
    DATASETS.register(_name, lambda o, _name=_name: _glue(_name, o))
