"""Small data sets written in their real on-disk formats."""
import gzip
import struct
from pathlib import Path

import numpy as np


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
