"""A fixed pool of augmented training views with the teacher's outputs computed once (``teacher_views``).

The teacher never changes, so its output on an augmented image never changes either; a step that runs it
afresh spends about a third of its time (ResNet-56, 2 CPU cores, half-pruned student) on a figure that
could be looked up. With ``DistillConfig.teacher_views = K`` the run first draws K epochs of augmented
batches exactly as training would (same stream, crop/flip and CutMix), runs the teacher on each once, and
then trains on random batches of those K x N views, each with its stored target. The price is diversity: a
run of E epochs sees each view about E / K times instead of E fresh ones (the accuracy it costs, and the
speed it buys: benchmarks/RESULTS.md, "Distillation step speed").

Used only where it is exact and affordable: training images given as a tensor, one output tensor per
batch (a classifier's logits; dense maps would cost a copy of every map), no feature matching (which reads
the teacher's inner activations every step) and the pool within ``POOL_MAX_BYTES``; otherwise the run
augments afresh and ``declined`` says why.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

from compress.recover.budget import TrainStream
from compress.recover.metrics import on_device

POOL_MAX_BYTES = 2 << 30  # images + teacher outputs held at most (2 GiB): 1,800 CIFAR images x 16 views is 0.35 GiB


def declined(stream: TrainStream, views: int, features: float) -> str | None:
    """Why a pool of ``views`` views per image cannot be used for this run, or None when it can (the
    output's size is checked when the pool is built)."""
    if not isinstance(stream.images, torch.Tensor):
        return "the training images come from a loader"
    if features > 0:
        return "feature matching reads the teacher's activations every step"
    x = stream.images
    if views * x.shape[0] * x[0].numel() * x.element_size() > POOL_MAX_BYTES:
        return f"{views} views of {x.shape[0]} images exceed {POOL_MAX_BYTES >> 30} GiB"
    return None


class ViewPool:
    """Endless random batches of (view, teacher output) pairs from a pool built by :func:`build_pool`."""

    def __init__(self, x: torch.Tensor, t: torch.Tensor, generator: torch.Generator, batch_size: int,
                 channels_last: bool):
        self.x, self.t, self.generator, self.batch_size, self.channels_last = x, t, generator, batch_size, channels_last

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, b = self.x.shape[0], self.batch_size
        while True:
            perm = torch.randperm(n, generator=self.generator).to(self.x.device)
            for k in range(n // b):
                idx = perm[k * b : (k + 1) * b]
                x = self.x[idx]
                yield (x.contiguous(memory_format=torch.channels_last) if self.channels_last else x), self.t[idx]


def build_pool(stream: TrainStream, augment: Callable[[torch.Tensor], torch.Tensor],
               teacher: Callable[[torch.Tensor], torch.Tensor], views: int, device: torch.device,
               channels_last: bool) -> tuple[ViewPool | None, str | None]:
    """(the pool, None), or (None, why not): ``views`` epochs of ``stream`` augmented by ``augment`` as
    training would, and ``teacher`` (called as the training step calls it) on each batch once."""
    xs: list[torch.Tensor] = []
    ts: list[torch.Tensor] = []
    batches = iter(stream)
    with torch.no_grad():
        for _ in range(views * (stream.steps_per_epoch or 0)):
            x = on_device(augment(next(batches).to(device, non_blocking=True)), device, channels_last)
            t = teacher(x)
            if not isinstance(t, torch.Tensor) or t.ndim != 2:
                return None, "the teacher's output is not one (N, classes) tensor"
            xs.append(x.contiguous())
            ts.append(t)
    if not xs:
        return None, "no full training batch"
    return ViewPool(torch.cat(xs), torch.cat(ts), stream.generator, stream.batch_size, channels_last), None
