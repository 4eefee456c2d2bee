"""Hooks that are always removed, and modes that are always restored."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch.nn as nn

from compress.util.modules import eval_mode

__all__ = ["eval_mode", "forward_hooks", "frozen_parameters"]  # eval_mode lives in compress.util (export uses it too)


@contextlib.contextmanager
def forward_hooks(model: nn.Module, hooks: dict[str, Callable]) -> Iterator[None]:
    """Register ``{module name: forward hook}``; every handle is removed on exit, even on error."""
    handles = []
    try:
        for name, hook in hooks.items():
            handles.append(model.get_submodule(name).register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """No parameter gradients inside (activation gradients still flow); restored after."""
    flags = {p: p.requires_grad for p in model.parameters()}
    for p in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
