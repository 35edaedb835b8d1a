"""Small data sets written in their real on-disk formats, and small helpers the tests share."""
import gzip
import importlib.util
import struct
from pathlib import Path

import numpy as np
import torch

import noisesim


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX: magic (0, 0, 0x08 = ubyte, ndim), big-endian uint32 dims, raw bytes; gzipped."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_fashion_mnist(root: Path, n_train: int = 256, n_test: int = 128, seed: int = 0) -> Path:
    """Fashion-MNIST-format files whose class is drawn as a bright bar at a class-dependent row."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 60, (n, 28, 28))
        for i, c in enumerate(labels):
            images[i, 2 + 2 * c: 4 + 2 * c, 4:24] = 250
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


def make_cifar10(root: Path, n: int = 10, seed: int = 0) -> Path:
    """CIFAR-10 python batches (the files torchvision's CIFAR10 reads) under ``root/cifar-10-batches-py``."""
    import pickle

    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [i % 10 for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"c%d" % i for i in range(10)]}, f)
    return root


def make_imagenet(root: Path, per_class: int = 3) -> Path:
    """An ImageFolder tree ``root/{train,val}/<wnid>/*.JPEG`` of two classes."""
    from PIL import Image

    for split in ("train", "val"):
        for wnid in ("n01440764", "n01443537"):
            d = root / split / wnid
            d.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (300, 260), (40 * i, 80, 120)).save(d / f"img_{i}.JPEG")
    return root


def separable_task(seed: int = 0, n: int = 3000, n_train: int = 2000, classes: int = 8):
    """A float MLP trained on a separable ``classes``-way problem in 16 dimensions (2-bit post-training
    quantization wrecks it), with its shuffled training batches and its test batches."""
    import torch
    from torch import nn

    from noisesim.data.tensors import TensorBatches

    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, 16, generator=g) * 1.5
    y = torch.randint(0, classes, (n,), generator=g)
    x = centres[y] + torch.randn(n, 16, generator=g)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, classes))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(300):
        loss = nn.functional.cross_entropy(net(x[:n_train]), y[:n_train])
        opt.zero_grad()
        loss.backward()
        opt.step()
    train = TensorBatches(x[:n_train], y[:n_train], 100, shuffle=True, generator=torch.Generator().manual_seed(1))
    return net.eval(), train, TensorBatches(x[n_train:], y[n_train:], 500 if n - n_train <= 1000 else 1000)


def output_noise(sim, x):
    """The noise a prepared model adds on ``x``: its output minus the same output with noise off."""
    with torch.no_grad():
        noisy = sim(x)
        with noisesim.noise_disabled(sim):
            clean = sim(x)
    return noisy - clean


def load_example(name: str):
    """The script ``examples/<name>.py`` as a module (examples are scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"examples_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
