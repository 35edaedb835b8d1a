"""Standard-normal draws for the noise models, reproducible and parallel on the CPU.

PyTorch fills a CPU tensor with ``normal_`` on one thread (its Mersenne-Twister generator is
sequential), which makes noise generation the largest cost of a simulated forward. Here a
large tensor is split into a fixed number of chunks, each with its own ``torch.Generator``
(seeded ``seed * CHUNKS + k``), filled on a small thread pool; torch releases the GIL inside
the kernel, so the chunks run in parallel. The draws are independent N(0, 1) samples and, the
chunk count being fixed, identical whatever the number of cores. On GPUs one call is made.

``method="table"`` (opt-in, ``--noise_sampler table``) replaces PyTorch's Box-Muller transform by an
inverse-CDF table: one 32-bit uniform integer per two draws, each 16-bit half indexing a table of the
65536 midpoint quantiles Φ⁻¹((i + ½) / 65536), rescaled to unit variance. The draws are exact in
mean (0, by symmetry) and variance (1), discrete in probability steps of 1/65536 (Kolmogorov-Smirnov
distance of the table's distribution to N(0, 1): 1.0e-5), and truncated at ±4.32σ: a Gaussian falls
beyond with probability 1.5e-5, which the table puts at its outermost levels instead.
"""
from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import torch

CHUNKS = 8
PARALLEL_MIN = 1 << 18  # smaller tensors are filled in one call
METHODS = ("normal", "table")
TABLE_BITS = 16


@functools.lru_cache(maxsize=None)
def normal_table(device: str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 2^16 midpoint quantiles of N(0, 1), rescaled to unit variance."""
    q = torch.special.ndtri((torch.arange(1 << TABLE_BITS, dtype=torch.float64) + 0.5) / (1 << TABLE_BITS))
    return (q / q.pow(2).mean().sqrt()).to(device=device, dtype=dtype)


def _fill_from_table(flat: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Fill a 1-D tensor with table draws: each 32-bit uniform integer gives two 16-bit indices."""
    n = flat.numel()
    half = (n + 1) // 2
    r = torch.empty(half, dtype=torch.int64, device=flat.device).random_(0, 1 << 32, generator=generator)
    table = normal_table(str(flat.device), flat.dtype)
    torch.index_select(table, 0, r & 0xFFFF, out=flat[:half])
    torch.index_select(table, 0, (r >> TABLE_BITS)[:n - half], out=flat[half:])
    return flat


@functools.lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=min(CHUNKS, os.cpu_count() or 1), thread_name_prefix="noisesim-rng")


class GaussianSampler:
    """Draws N(0, 1) tensors. ``seed=None`` seeds from the global torch RNG at construction; ``method``:
    ``normal`` (PyTorch's ``normal_``) or ``table`` (the inverse-CDF table above)."""

    def __init__(self, seed: Optional[int] = None, method: str = "normal"):
        if method not in METHODS:
            raise ValueError(f"noise sampler must be one of {', '.join(METHODS)}, got {method!r}")
        if seed is None:
            seed = int(torch.randint(0, 2 ** 31 - 1, ()).item())
        self.seed, self.method = seed, method
        self._generators: dict[str, list[torch.Generator]] = {}
        self._stream: Optional[int] = None

    def reset(self) -> None:
        """Start the draws over from the seed (the same noise again: common random numbers)."""
        self._generators.clear()
        self._stream = None

    def reseed(self, stream: int) -> None:
        """Continue from the generators of stream ``stream`` of this seed (an evaluation batch and draw): the
        same stream gives the same noise in any process; different streams are independent."""
        self._generators.clear()
        self._stream = stream

    def _gens(self, device: torch.device) -> list[torch.Generator]:
        key = str(device)
        if key not in self._generators:
            n = CHUNKS if device.type == "cpu" else 1
            base = self.seed if self._stream is None else hash((self.seed, self._stream)) % (1 << 40)
            self._generators[key] = [torch.Generator(device).manual_seed(base * CHUNKS + k) for k in range(n)]
        return self._generators[key]

    def _fill(self, flat: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return _fill_from_table(flat, generator) if self.method == "table" else flat.normal_(generator=generator)

    @torch.compiler.disable  # generators and the thread pool run eagerly inside torch.compile'd models
    def sample(self, shape: torch.Size, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        gens = self._gens(device)
        out = torch.empty(shape, device=device, dtype=dtype)
        if len(gens) == 1 or out.numel() < PARALLEL_MIN or (os.cpu_count() or 1) == 1:
            self._fill(out.view(-1), gens[0])
            return out
        chunks = out.view(-1).chunk(len(gens))
        list(_pool().map(lambda i: self._fill(chunks[i], gens[i]), range(len(chunks))))
        return out
