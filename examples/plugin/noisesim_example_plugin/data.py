"""Gaussian blobs as 8x8 images: what a loader for noisesim's ``--dataset`` looks like."""
import torch

from noisesim.data.bundle import DataBundle, DataOptions, tensor_bundle

CLASSES, SIZE = 4, 8


def _images(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Class k: a bright k-th quadrant plus unit Gaussian pixel noise."""
    y = torch.randint(0, CLASSES, (n,), generator=generator)
    x = torch.randn(n, 1, SIZE, SIZE, generator=generator)
    half = SIZE // 2
    for k in range(CLASSES):
        r, c = divmod(k, 2)
        x[y == k, :, r * half:(r + 1) * half, c * half:(c + 1) * half] += 1.5
    return x, y


def blobs(options: DataOptions) -> DataBundle:
    """1024 training and 512 test images (fixed: the data do not change with the run's seed), batched
    and subset as ``options`` asks."""
    generator = torch.Generator().manual_seed(1234)
    train, test = _images(1024, generator), _images(512, generator)
    return tensor_bundle(train, test, options, classes=CLASSES, channels=1)
