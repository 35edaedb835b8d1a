"""ImageNet (ILSVRC2012) from an ImageFolder tree: ``DIR/train/<wnid>/*.JPEG``, ``DIR/val/<wnid>/*.JPEG``.

Preprocessing: resize the short side to input_size / 0.875, centre crop ``input_size``, then
``imagenet`` mean/std normalisation or ``lite`` (pixel - 127) / 128 (EfficientNet-Lite).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from noisesim.data.bundle import DataBundle, DataFileError, DataNotFoundError, DataOptions
from noisesim.data.samples import IMAGENET_MEAN, IMAGENET_STD
from noisesim.data.tasks import Classification
from noisesim.registry import DATASETS


def _lite(t: torch.Tensor) -> torch.Tensor:
    return (t * 255 - 127) / 128


def read_image(path: str):
    """torchvision's image reader; a file that is not a readable image is a one-line DataFileError naming it
    (images are read lazily, so this is where a corrupt file of a large folder is found)."""
    from torchvision.datasets.folder import default_loader

    try:
        return default_loader(path)
    except OSError as e:  # PIL's UnidentifiedImageError and truncated files are OSErrors
        raise DataFileError(f"--data_path {path}: not a readable image ({' '.join(str(e).split())[:120]})") from None


def _loader(o: DataOptions, split: str, batch_size: int, shuffle: bool, n: Optional[int], seed: int):
    from torchvision import datasets, transforms

    root = Path(o.data_path or "") / split
    if not o.data_path or not root.is_dir():
        raise DataNotFoundError(f"ImageNet {split} folder not found at {root}; pass --data_path DIR with "
                                f"DIR/{split}/<wnid>/*.JPEG (the ILSVRC2012 layout used by ImageFolder)")
    resize = int(round(o.input_size / 0.875))
    norm = transforms.Lambda(_lite) if o.normalization == "lite" else transforms.Normalize(IMAGENET_MEAN,
                                                                                            IMAGENET_STD)
    tf = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(o.input_size), transforms.ToTensor(),
                             norm])
    ds = datasets.ImageFolder(str(root), tf, loader=read_image)
    if n is not None and n < len(ds):
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].tolist()
        ds = torch.utils.data.Subset(ds, idx)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=o.workers,
                                       generator=torch.Generator().manual_seed(seed),
                                       drop_last=shuffle and len(ds) > batch_size)


@DATASETS.register("imagenet")
def imagenet(o: DataOptions) -> DataBundle:
    return DataBundle(_loader(o, "train", o.train_batch_size, True, o.train_subset, o.seed),
                      _loader(o, "val", o.val_batch_size, False, o.val_subset, o.seed + 1), 1000, 3, Classification())
