"""Data parallelism over processes started by ``torchrun`` (gloo on CPUs, NCCL on GPUs).

    torchrun --nproc_per_node 4 main.py ...                                  # one machine, 4 GPUs
    torchrun --nnodes 2 --node_rank R --nproc_per_node 8 \\
             --rdzv_backend c10d --rdzv_endpoint HOST:29500 main.py ...      # two machines

Every process runs the same sweep. Batch i of an evaluation or a training pass belongs to process
i mod world_size. Evaluation gathers every batch's per-example outcomes back into the order of the
data, so each metric and bootstrap interval is computed from exactly the examples a single process
would see (counts, never averages of averages). Training (trained allocations, quantization-aware
training) averages the gradients of the trainable parameters over the processes after every
backward pass and logs the mean loss, so that every process takes the same steps and makes the same
convergence decisions — the semantics of ``DistributedDataParallel``. Process 0 alone writes the run
folder and prints.

Noise draws: before evaluation batch i every noise model reseeds its generators from (its seed,
the batch index, the draw), so a batch gets the same noise whichever process evaluates it and the
draws of different batches are independent — the distributed evaluation equals the single-process
one with the same seeds (``evaluate_outcomes(..., batch_seed=...)``).
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Iterator, Optional

import torch
import torch.distributed as dist


def init_from_env(device: Optional[torch.device] = None) -> bool:
    """Join the process group torchrun describes (WORLD_SIZE > 1); False when there is none."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    cuda = device is not None and device.type == "cuda"
    dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(local_rank())
    return True


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def device_for(requested: Optional[str]) -> torch.device:
    """The device of this process: ``requested`` (default cuda when available), cuda:LOCAL_RANK under torchrun."""
    device = torch.device(requested or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {requested}: this machine has no CUDA device that PyTorch can use; use cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {requested}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                         f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if device.type == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return torch.device("cuda", local_rank())
    return device


def shard(batches: Iterable) -> Iterator[tuple[int, Any]]:
    """(index, batch) of the batches this process owns: index mod world_size == rank."""
    r, w = rank(), world_size()
    for i, batch in enumerate(batches):
        if i % w == r:
            yield i, batch


def gather_indexed(items: list[tuple[int, Any]]) -> list[Any]:
    """Every process's (index, item) pairs, as one list in index order (the same on every process)."""
    if not active():
        return [item for _, item in sorted(items, key=lambda t: t[0])]
    gathered: list[Optional[list]] = [None] * world_size()
    dist.all_gather_object(gathered, items)
    return [item for _, item in sorted((pair for part in gathered for pair in part), key=lambda t: t[0])]


def average_gradients(params: Iterable[torch.Tensor]) -> None:
    """Replace each gradient by its mean over the processes (what DistributedDataParallel does)."""
    if not active():
        return
    w = world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(w)


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def mean(value: float) -> float:
    """A number averaged over the processes (the same result on each)."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return float(t.item()) / world_size()


def from_main(obj: Any) -> Any:
    """Process 0's ``obj`` on every process (e.g. whether it could open the run folder)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if active():
        dist.barrier()
