"""Task metrics over whole image sets: the labelled metric of one model, and two models compared.

Shared by ``compress prune --eval`` (``compress.run.stages.accuracy``) and ``compress bench``
(``compress.run.bench_sides``): one forward pass per batch, figures accumulated by the task's meters.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn as nn

from compress.devices import resolve_device
from compress.tasks.base import Task

BATCH = 256


def labelled_pairs(evaluation: Any, batch_size: int = BATCH) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """``(images, targets)`` batches from a pair of tensors or a loader of such batches."""
    if isinstance(evaluation, tuple):
        images, targets = evaluation
        return ((images[i:i + batch_size], targets[i:i + batch_size]) for i in range(0, images.shape[0], batch_size))
    return evaluation


@torch.no_grad()
def labelled_metric(task: Task, model: nn.Module, evaluation: Any, *, device: str | torch.device = "cpu") -> float:
    """The task's labelled metric (top-1, mIoU) of ``model`` in eval mode (its mode restored)."""
    dev = resolve_device(device)
    meter = task.metric_meter()
    was = model.training
    model.eval().to(dev)
    try:
        for x, y in labelled_pairs(evaluation):
            meter.update(task.labelled_output(model, x.to(dev)), y)
    finally:
        model.train(was)
    return meter.value()


@torch.inference_mode()
def compare_models(task: Task, models: list[nn.Module], batches) -> tuple[list[float | None], float]:
    """One pass of the models over ``(images, targets or None)`` batches: (each model's labelled metric, or
    None without targets; the last model's agreement with the first)."""
    metrics = [task.metric_meter() for _ in models]
    agree = task.agreement_meter()
    labelled = False
    for x, y in batches:
        outs = [m.eval()(x) for m in models]
        agree.update(outs[-1], outs[0])
        if y is not None:
            labelled = True
            for meter, model, out in zip(metrics, models, outs):
                meter.update(task.labelled_output(model, x, out), y)
    if not agree.per_image().numel():
        from compress.errors import UsageError

        raise UsageError("no images to compare the two models on", "give a folder with images")
    return [m.value() if labelled else None for m in metrics], agree.value()
