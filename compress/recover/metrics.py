"""How close a student is to its teacher, and how accurate a model is: the figures every stage reports.

``agreement`` (the task's agreement with the original, top-1 agreement for a classifier, and the mean
KL at T=1) needs no labels; ``top1_accuracy`` needs them. Both accept a float tensor (N, C, H, W) or a
loader of batches / ``(batch, index)`` tuples (:func:`image_batches`).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import torch
import torch.nn as nn

from compress.devices import device_of, resolve_device
from compress.recover.config import DistillConfigError
from compress.tasks import default_task


def first_tensor(batch: Any) -> torch.Tensor:
    """The images of a batch that is a tensor or a ``(tensor, index...)`` tuple."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def image_batches(images: Any, batch_size: int) -> Iterator[torch.Tensor]:
    """Batches of images from a float tensor (N,3,H,W) or a loader of batches / ``(batch, index)`` tuples."""
    if isinstance(images, torch.Tensor):
        for i in range(0, images.shape[0], batch_size):
            yield images[i : i + batch_size]
    else:
        for b in images:
            yield first_tensor(b)


def on_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """A batch on ``device``, in the memory layout the models run in."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@torch.no_grad()
def agreement_logits(student: nn.Module, images: Any, teacher_logits: list[Any] | None,
                     teacher: nn.Module | None, device: torch.device, batch_size: int,
                     channels_last: bool = False, task=None) -> tuple[float, float, torch.Tensor]:
    """(the task's agreement, mean KL per image, per-image values: for a classifier 1 where the two
    models' top-1 agree, for a segmenter the fraction of pixels whose argmax agrees). The teacher's
    outputs come from ``teacher_logits`` (one entry per batch) when given, else from running ``teacher``."""
    meter = (task or default_task()).agreement_meter()
    was = student.training
    student.eval()
    try:
        for i, x in enumerate(image_batches(images, batch_size)):
            x = on_device(x, device, channels_last)
            t = teacher_logits[i] if teacher_logits is not None else teacher(x)
            meter.update(student(x), t)
    finally:
        student.train(was)
    h = meter.per_image()
    if not h.numel():
        raise DistillConfigError("no held-out images to measure agreement on", "give at least one image")
    return meter.value(), meter.kl(), h


def agreement(student: nn.Module, teacher: nn.Module, images: Any, *, device: str | torch.device = "cpu",
              batch_size: int = 256, task=None) -> tuple[float, float]:
    """(the task's agreement (top-1 agreement for a classifier), mean KL(teacher || student) at T=1) of
    two models on ``images``.

    Both models are run in eval mode on ``device`` (moved there; devices and modes restored afterwards).
    """
    dev = resolve_device(device)
    homes = [(m, device_of(m)) for m in (student, teacher)]
    t_was = teacher.training
    teacher.eval()
    try:
        return agreement_logits(student.to(dev), images, None, teacher.to(dev), dev, batch_size, task=task)[:2]
    finally:
        teacher.train(t_was)
        for model, home in homes:
            model.to(home)


@torch.no_grad()
def top1_accuracy(model: nn.Module, images: Any, labels: torch.Tensor | None = None, *,
                  device: str | torch.device = "cpu", batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on ``images``/``labels`` tensors, or on an
    iterable of ``(images, labels)`` batches when ``labels`` is None."""
    dev = resolve_device(device)
    was = model.training
    model.eval().to(dev)
    if labels is not None:
        pairs: Iterable = ((images[i : i + batch_size], labels[i : i + batch_size])
                           for i in range(0, images.shape[0], batch_size))
    else:
        pairs = images
    correct = n = 0
    try:
        for x, y in pairs:
            pred = model(x.to(dev)).argmax(1).cpu()
            correct += (pred == y.cpu()).sum().item()
            n += y.shape[0]
    finally:
        model.train(was)
    if n == 0:
        raise ValueError("no labelled images to measure accuracy on")
    return correct / n
