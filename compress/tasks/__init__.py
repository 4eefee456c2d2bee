"""Tasks, by name (``--task``): what the model's output means for importance, recovery and metrics.

``auto`` picks the first registered task of ``AUTO_ORDER`` whose ``claims_auto`` accepts the model's output on
an example batch (a detector family's raw outputs -> detect; class maps at the input's resolution or a known
segmenter's ``out`` -> segment; (N, classes) logits -> classify); an output no task claims is refused with one
line naming its structure and the ``--task`` choices, never guessed (``raw`` takes any tensors, asked by name
only). Register a new task by adding it to ``TASKS`` (and, for ``auto``, to ``AUTO_ORDER``).
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
    "raw": "compress.tasks.raw:RawTask",
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


def resolve_task(name: str, output: Any, example: torch.Tensor, decode: str | None = None) -> tuple[Task, str]:
    """(task, how it was chosen) for a model's ``output`` on ``example``; a named task must claim it too.
    The task keeps the model's number of classes (``Task.classes``) to check labelled data against.
    ``decode`` (``--decode FILE.py:fn``, with ``raw`` only): the user's decoder, tried on ``output`` here."""
    if decode and name != "raw":
        raise UsageError(f"--decode {decode} reads raw outputs: it goes with --task raw", "add --task raw")
    if name != "auto":
        task = get_task(name)
        if not task.claims(output, example):
            raise UsageError(f"--task {name} does not fit the model's output ({task.describe(output)})",
                             f"use --task auto or one of {', '.join(TASKS)}")
        if decode:
            from compress.detection.user import load_decoder

            decoder = load_decoder(decode)
            decoder(output, tuple(example.shape[-2:]), images=example.shape[0])  # a bad decoder fails here
            task.with_decoder(decoder)
        return _with_classes(task, output), "as given"
    for candidate in AUTO_ORDER:
        task = get_task(candidate)
        if task.claims_auto(output, example):
            return _with_classes(task, output), f"auto: the output is {task.describe(output)}"
    raise UsageError(f"no task fits the model's output ({structure(output, example)}): --task auto does not guess",
                     "name it: --task raw (any tensors: regression distillation, relative error and cosine against "
                     "the original; add --decode FILE.py:fn for a detector), or --task "
                     + " / ".join(t for t in TASKS if t != "raw"))


def structure(output: Any, example: torch.Tensor) -> str:
    """The output's structure in words, for messages: its container, each tensor's shape, the input's size."""
    shapes = ", ".join(f"{k}{'x'.join(map(str, t.shape))}" for k, t in _named_tensors(output))
    return f"{type(output).__name__} of {shapes} for a {'x'.join(map(str, example.shape))} input"


def _named_tensors(output: Any) -> list[tuple[str, torch.Tensor]]:
    if isinstance(output, dict):
        return [(f"{k} ", v) for k, v in output.items() if isinstance(v, torch.Tensor)]
    return [("", t) for t in flatten_outputs(output)]


def _with_classes(task: Task, output: Any) -> Task:
    task.classes = task.class_count(output)
    return task


def task_of(model: torch.nn.Module, example: torch.Tensor, name: str = "auto", decode: str | None = None) -> Task:
    """The task of ``model`` from one forward pass on ``example`` (eval mode, no gradients)."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(example)
    finally:
        model.train(was)
    return resolve_task(name, output, example, decode)[0]


__all__ = ["AUTO_ORDER", "CHOICES", "Meter", "TASKS", "Task", "default_task", "first_output", "flatten_outputs",
           "get_task", "kl_per_position", "resolve_task", "task_of"]
