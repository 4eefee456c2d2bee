"""Two facts about any ``nn.Module`` that every layer needs: where it lives, and eval mode with
each submodule's own mode restored."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
import torch.nn as nn


def device_of(model: nn.Module) -> torch.device:
    """Where ``model`` lives: its first parameter's or buffer's device (the CPU for an empty model)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode inside, every submodule's own ``training`` flag restored after, even on error. A
    module that refuses ``eval()`` (a ``torch.export`` program's ``.module()``) runs as it is."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
    except NotImplementedError:
        pass
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def tensor_leaves(output: Any) -> list[torch.Tensor]:
    """Every tensor of a (nested) model output, in a fixed order: dicts by insertion order (the order
    ``torch.utils._pytree`` and the ONNX exporters use), sequences by position; ``None`` is skipped and
    any other leaf raises ``TypeError`` (nothing downstream could compare it)."""
    if isinstance(output, torch.Tensor):
        return [output]
    if output is None:
        return []
    if isinstance(output, dict):
        return [t for v in output.values() for t in tensor_leaves(v)]
    if isinstance(output, (list, tuple)):
        return [t for v in output for t in tensor_leaves(v)]
    raise TypeError(f"a {type(output).__name__} among the outputs")
