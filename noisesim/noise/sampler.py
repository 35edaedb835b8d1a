"""Standard-normal draws for the noise models, reproducible, independent between layers, seeds and
streams, and parallel on the CPU.

Every draw comes from a stream named by (seed, key, stream): ``seed`` is the run's seed, ``key`` the
layer's name, ``stream`` an optional evaluation batch and draw (see :meth:`GaussianSampler.reseed`).
The name is mixed into generator seeds with NumPy's ``SeedSequence`` (a hash designed so that nearby
inputs give statistically independent outputs; O'Neill 2015, PCG), so the streams of layer l under
seed s and of layer l+1 under seed s+1 share nothing: runs and Monte-Carlo draws with consecutive
seeds are independent.

PyTorch fills a CPU tensor with ``normal_`` on one thread (its Mersenne-Twister generator is
sequential), which makes noise generation the largest cost of a simulated forward. Here a large
tensor is split into a fixed number of chunks, each with its own ``torch.Generator`` (its seed the
chunk's word of the SeedSequence's state), filled on a small thread pool; torch releases the GIL
inside the kernel, so the chunks run in parallel. The draws are independent N(0, 1) samples and, the
chunk count being fixed, identical whatever the number of cores. On GPUs one call is made.
"""
from __future__ import annotations

import functools
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np
import torch

CHUNKS = 8
PARALLEL_MIN = 1 << 18  # smaller tensors are filled in one call
_WORD = 1 << 64


@functools.lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=min(CHUNKS, os.cpu_count() or 1), thread_name_prefix="noisesim-rng")


# a forked child inherits the pool but none of its threads (work handed to it would wait forever): it makes its own
os.register_at_fork(after_in_child=_pool.cache_clear)


def _word(n: int) -> list[int]:
    """A signed integer as non-negative SeedSequence words (its magnitude and its sign)."""
    return [abs(n) % _WORD, abs(n) // _WORD % _WORD, int(n < 0)]


def stream_seeds(seed: int, key: str = "", stream: Optional[int] = None, n: int = 1) -> list[int]:
    """``n`` 64-bit generator seeds of stream (seed, key, stream): equal inputs give equal seeds in any
    process; any other input gives unrelated ones."""
    digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    spawn = [digest] + ([] if stream is None else [1] + _word(stream))
    state = np.random.SeedSequence(_word(seed), spawn_key=spawn).generate_state(n, np.uint64)
    return [int(s) for s in state]


class GaussianSampler:
    """Draws N(0, 1) tensors from the stream of (``seed``, ``key``). ``seed=None`` seeds from the global torch
    RNG at construction; ``key`` names the stream's owner (a layer)."""

    def __init__(self, seed: Optional[int] = None, key: str = ""):
        if seed is None:
            seed = int(torch.randint(0, 2 ** 31 - 1, ()).item())
        self.seed, self.key = seed, key
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
            seeds = stream_seeds(self.seed, self.key, self._stream, CHUNKS if device.type == "cpu" else 1)
            self._generators[key] = [torch.Generator(device).manual_seed(s) for s in seeds]
        return self._generators[key]

    def sample(self, shape: torch.Size, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        if torch.compiler.is_compiling():
            # the generators and the thread pool run eagerly inside torch.compile'd models; the wrapper is
            # made here, not by a decorator, so that importing noisesim does not import torch._dynamo
            return torch.compiler.disable(self._draw)(shape, device, dtype)
        return self._draw(shape, device, dtype)

    def _draw(self, shape: torch.Size, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        gens = self._gens(device)
        out = torch.empty(shape, device=device, dtype=dtype)
        if len(gens) == 1 or out.numel() < PARALLEL_MIN or (os.cpu_count() or 1) == 1:
            return out.normal_(generator=gens[0])
        chunks = out.view(-1).chunk(len(gens))
        list(_pool().map(lambda i: chunks[i].normal_(generator=gens[i]), range(len(chunks))))
        return out
