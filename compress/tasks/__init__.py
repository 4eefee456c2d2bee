"""Tasks, by name (``--task``): what the model's output means for importance, recovery and metrics.

``auto`` picks the first registered task whose ``claims`` accepts the model's output on an example batch
(dense maps -> segment, (N, classes) logits -> classify); an output no task claims is refused, never
guessed. Register a new task by adding it to ``TASKS`` (and, for ``auto``, to ``AUTO_ORDER``).
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from compress.errors import UsageError
from compress.tasks.base import Meter, Task, first_output, flatten_outputs, kl_per_position

TASKS: dict[str, str] = {
    "classify": "compress.tasks.classify:ClassifyTask",
    "segment": "compress.tasks.segment:SegmentTask",
    "detect": "compress.tasks.detect:DetectTask",
}
AUTO_ORDER = ("detect", "segment", "classify")
CHOICES = ("auto", *TASKS)


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise UsageError(f"unknown task {name!r}", f"choose one of {', '.join(CHOICES)}")
    module, attr = TASKS[name].split(":")
    return getattr(importlib.import_module(module), attr)()


def default_task() -> Task:
    """The classifier: what callers that predate tasks mean."""
    return get_task("classify")


def resolve_task(name: str, output: Any, example: torch.Tensor) -> tuple[Task, str]:
    """(task, how it was chosen) for a model's ``output`` on ``example``; a named task must claim it too.
    The task keeps the model's number of classes (``Task.classes``) to check labelled data against."""
    if name != "auto":
        task = get_task(name)
        if not task.claims(output, example):
            raise UsageError(f"--task {name} does not fit the model's output ({task.describe(output)})",
                             f"use --task auto or one of {', '.join(TASKS)}")
        return _with_classes(task, output), "as given"
    for candidate in AUTO_ORDER:
        task = get_task(candidate)
        if task.claims(output, example):
            return _with_classes(task, output), f"auto: the output is {task.describe(output)}"
    raise UsageError(f"no task fits the model's output ({get_task('classify').describe(output)})",
                     f"compress handles {', '.join(TASKS)} outputs: (N, classes) logits or (N, classes, H, W) maps")


def _with_classes(task: Task, output: Any) -> Task:
    task.classes = task.class_count(output)
    return task


def task_of(model: torch.nn.Module, example: torch.Tensor, name: str = "auto") -> Task:
    """The task of ``model`` from one forward pass on ``example`` (eval mode, no gradients)."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(example)
    finally:
        model.train(was)
    return resolve_task(name, output, example)[0]


__all__ = ["AUTO_ORDER", "CHOICES", "Meter", "TASKS", "Task", "default_task", "first_output", "flatten_outputs",
           "get_task", "kl_per_position", "resolve_task", "task_of"]
