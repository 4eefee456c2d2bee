"""Data parallelism under torchrun: one process per device, gloo on CPU, NCCL on GPUs.

Nothing here is needed for a single process: every helper degrades to the obvious no-op when
``torch.distributed`` is not initialised. ``torchrun --nproc-per-node N -m compress prune …``
sets RANK/WORLD_SIZE/LOCAL_RANK; :func:`setup` reads them once.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def launched() -> bool:
    """True inside a torchrun-launched process group of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str = "auto") -> str:
    """Initialise the process group when launched by torchrun; returns this rank's device."""
    if not launched() or dist.is_initialized():
        return device
    cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return f"cuda:{local}" if cuda else ("cpu" if device == "auto" else device)


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """In place: the sum over ranks (float64 tensors travel fine over gloo and NCCL)."""
    if active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast(obj: Any) -> Any:
    """Rank 0's object on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if active():
        dist.barrier()


def shard(n: int) -> torch.Tensor:
    """The image indices this rank handles: rank, rank + world, ... (global indices)."""
    return torch.arange(rank(), n, world())
