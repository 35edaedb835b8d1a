"""Criteo click logs (Kaggle Display Advertising Challenge format) and an offline generator.

Format: one sample per line, tab-separated: label, 13 integer features, 26 categorical
features as 8-digit hex strings; any feature may be empty. Dense features become
log(1 + max(x, 0)) (missing = 0); categorical ones are hashed into ``table_size`` buckets
(missing = bucket 0) with pandas' vectorised ``hash_array`` (the hashing trick: which bucket a
value lands in is arbitrary but fixed). The file is read in chunks (``chunk_rows`` lines), so the
45-million-line Kaggle ``train.txt`` streams through bounded memory (about 60 MB per million rows
kept, with ``max_rows`` to read only the first lines).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch

from noisesim.data.bundle import DataBundle, DataNotFoundError, DataOptions, tensor_bundle
from noisesim.data.tasks import BinaryClassification
from noisesim.registry import DATASETS

if TYPE_CHECKING:
    import pandas as pd

NUM_DENSE, NUM_SPARSE = 13, 26


def read_criteo(path: str | Path, table_size: int = 1000, max_rows: Optional[int] = None,
                chunk_rows: int = 1_000_000):
    """``((dense float32 (N, 13), sparse int64 (N, 26)), labels float32 (N,))`` from a TSV file."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"Criteo file {path} not found; pass --data_path DIR holding train.txt (the Kaggle "
                                "Display Advertising Challenge TSV) or generate one with "
                                "noisesim.data.criteo.write_synthetic_criteo")
    columns = 1 + NUM_DENSE + NUM_SPARSE
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline().rstrip("\n").split("\t")
    if len(first) != columns:
        raise ValueError(f"{path}: expected {columns} tab-separated columns, got {len(first)}")
    import pandas as pd  # loads with the first Criteo file, not with the command line

    types = {i: np.float64 if i <= NUM_DENSE else object for i in range(columns)}
    chunks = pd.read_csv(path, sep="\t", header=None, names=range(columns), nrows=max_rows, dtype=types,
                         na_values=[""], keep_default_na=False, chunksize=chunk_rows, on_bad_lines="error")
    parts = [_parse(chunk, table_size) for chunk in chunks]
    if not parts:
        raise ValueError(f"{path}: no rows")
    dense, sparse, labels = (np.concatenate(x) for x in zip(*parts))
    return (torch.from_numpy(dense), torch.from_numpy(sparse)), torch.from_numpy(labels)


def _parse(df: pd.DataFrame, table_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One chunk of lines -> dense log1p features, hashed categorical buckets, labels (empty cells: NaN)."""
    import pandas as pd

    labels = df[0].to_numpy(np.float32)
    dense = np.log1p(np.maximum(np.nan_to_num(df.iloc[:, 1:1 + NUM_DENSE].to_numpy(np.float64)), 0))
    cats = df.iloc[:, 1 + NUM_DENSE:]
    missing = cats.isna().to_numpy()
    hashed = pd.util.hash_array(cats.fillna("").to_numpy(object).ravel()).reshape(missing.shape)
    sparse = np.where(missing, 0, (hashed % np.uint64(table_size - 1)).astype(np.int64) + 1)
    if np.isnan(labels).any():
        raise ValueError("a line without its label")
    return dense.astype(np.float32), sparse, labels


def write_synthetic_criteo(path: str | Path, rows: int = 20000, seed: int = 0, informative: int = 8,
                           vocab: int = 20, noise_vocab: int = 100, missing: float = 0.05) -> Path:
    """Write Criteo-format data with a planted signal.

    The click probability is sigmoid(a . log1p(dense) + sum_f b_f[category_f]), standardised:
    every dense feature and the first ``informative`` categorical features (``vocab`` values,
    effects b ~ N(0, 1)) carry the signal; the other categorical features are uninformative
    (``noise_vocab`` values). ``missing`` of the feature cells are left empty.
    """
    rng = np.random.default_rng(seed)
    dense = rng.poisson(rng.uniform(0.5, 20, NUM_DENSE), (rows, NUM_DENSE))
    sizes = np.array([vocab] * informative + [noise_vocab] * (NUM_SPARSE - informative))
    cats = (rng.random((rows, NUM_SPARSE)) * sizes).astype(np.int64)
    a = rng.normal(0, 1.0, NUM_DENSE)
    b = rng.normal(0, 1.0, (informative, vocab))
    logit = np.log1p(dense) @ a + b[np.arange(informative), cats[:, :informative]].sum(1)
    logit = (logit - logit.mean()) / logit.std() * 2.5
    labels = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    hashes = rng.integers(0, 2 ** 32, (NUM_SPARSE, noise_vocab))
    hexes = np.char.mod("%08x", hashes[np.arange(NUM_SPARSE), cats])
    cells = np.concatenate([labels[:, None].astype(str), dense.astype(str), hexes], axis=1).astype(object)
    blank = rng.random(cells.shape) < missing
    blank[:, 0] = False
    cells[blank] = ""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.writelines("\t".join(row) + "\n" for row in cells)
    return path


def _bundle(path: Path, o: DataOptions) -> DataBundle:
    """The last 10% of the lines are the test split (the Kaggle test file has no labels)."""
    inputs, labels = read_criteo(path)
    n_test = max(1, len(labels) // 10)
    train = (tuple(t[:-n_test] for t in inputs), labels[:-n_test])
    test = (tuple(t[-n_test:] for t in inputs), labels[-n_test:])
    return tensor_bundle(train, test, o, 1, 0, BinaryClassification())


@DATASETS.register("criteo")
def criteo(o: DataOptions) -> DataBundle:
    return _bundle(Path(o.data_path or ".") / "train.txt", o)


@DATASETS.register("criteo_synthetic")
def criteo_synthetic(o: DataOptions) -> DataBundle:
    """Generated once into ``data_path`` (default: a folder in the system temp)."""
    root = Path(o.data_path) if o.data_path else Path(tempfile.gettempdir()) / "noisesim-criteo-synthetic"
    if not (root / "train.txt").is_file():
        write_synthetic_criteo(root / "train.txt", seed=0)
    return _bundle(root / "train.txt", o)
