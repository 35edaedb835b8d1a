"""Data sets by name: ``build_data("fashion_mnist", ...)`` -> batches for training / calibration and evaluation.

Each data module registers its loaders in ``noisesim.registry.DATASETS``; importing this module
imports them all. A new data set is a function ``DataOptions -> DataBundle`` decorated with
``@DATASETS.register("name")`` in a module imported here, or one from outside the package
(an import path or an entry point, see ``noisesim.registry``).
"""
from __future__ import annotations

import pickle
import zlib
from typing import Optional

from noisesim.data import cifar, criteo, fashion_mnist, glue, imagenet, samples, sentences  # noqa: F401 (register)
from noisesim.data.bundle import DataBundle, DataFileError, DataNotFoundError, DataOptions
from noisesim.registry import DATASETS, PluginError, one_line


def _loader(obj, origin: str):
    """What a plugin registers as a data set: a function ``DataOptions -> DataBundle``, whose errors
    (other than a missing data set) and wrong return values become one line naming it."""
    if not callable(obj):
        raise PluginError(f"{obj!r} is not a data loader (a function DataOptions -> DataBundle)")

    def load(options: DataOptions) -> DataBundle:
        try:
            bundle = obj(options)
        except DataNotFoundError:
            raise
        except Exception as e:
            raise PluginError(f"--dataset {origin}: the loader raised {one_line(e)}") from None
        if not isinstance(bundle, DataBundle):
            raise PluginError(f"--dataset {origin}: the loader returned {type(bundle).__name__}, not a "
                              "noisesim.data.bundle.DataBundle")
        return bundle

    return load


DATASETS.adapt = _loader


def build_data(dataset: str, data_path: Optional[str] = None, train_batch_size: int = 64,
               val_batch_size: int = 256, train_subset: Optional[int] = None, seed: int = 0,
               val_subset: Optional[int] = None, input_size: int = 224, workers: int = 2,
               normalization: str = "imagenet", tokenizer_name: Optional[str] = None) -> DataBundle:
    """Load ``dataset``; ``train_subset`` / ``val_subset`` keep fixed seeded random subsets."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    options = DataOptions(data_path, train_batch_size, val_batch_size, train_subset, val_subset, seed, input_size,
                          normalization, tokenizer_name, workers)
    try:
        return DATASETS.get(dataset)(options)
    except (DataNotFoundError, PluginError):
        raise
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, RuntimeError, pickle.UnpicklingError,
            zlib.error) as e:  # a file that exists but is empty, truncated, corrupt or of another format
        where = getattr(e, "filename", None) or data_path or "the default location"
        detail = " ".join(str(e).split())[:160] or type(e).__name__
        raise DataFileError(f"--data_path {where}: cannot read the {dataset} data ({detail})") from None


__all__ = ["build_data", "DataFileError", "DataBundle", "DataNotFoundError", "DataOptions", "DATASETS"]
