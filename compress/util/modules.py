"""Two facts about any ``nn.Module`` that every layer needs: where it lives, and eval mode with
each submodule's own mode restored."""

from __future__ import annotations

import contextlib
from typing import Iterator

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
