"""Standard-normal draws for the noise models, reproducible and parallel on the CPU.

PyTorch fills a CPU tensor with ``normal_`` on one thread (its Mersenne-Twister generator is
sequential), which makes noise generation the largest cost of a simulated forward. Here a
large tensor is split into a fixed number of chunks, each with its own ``torch.Generator``
(seeded ``seed * CHUNKS + k``), filled on a small thread pool; torch releases the GIL inside
the kernel, so the chunks run in parallel. The draws are independent N(0, 1) samples and, the
chunk count being fixed, identical whatever the number of cores. On GPUs one call is made.

"""
from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import torch

CHUNKS = 8
PARALLEL_MIN = 1 << 18  # smaller tensors are filled in one call


@functools.lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=min(CHUNKS, os.cpu_count() or 1), thread_name_prefix="noisesim-rng")


class GaussianSampler:
    """Draws N(0, 1) tensors. ``seed=None`` seeds from the global torch RNG at construction."""

    def __init__(self, seed: Optional[int] = None):
        if seed is None:
            seed = int(torch.randint(0, 2 ** 31 - 1, ()).item())
        self.seed = seed
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

    @torch.compiler.disable  # generators and the thread pool run eagerly inside torch.compile'd models
    def sample(self, shape: torch.Size, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        gens = self._gens(device)
        out = torch.empty(shape, device=device, dtype=dtype)
        if len(gens) == 1 or out.numel() < PARALLEL_MIN or (os.cpu_count() or 1) == 1:
            return out.normal_(generator=gens[0])
        chunks = out.view(-1).chunk(len(gens))
        list(_pool().map(lambda i: chunks[i].normal_(generator=gens[i]), range(len(chunks))))
        return out
