"""A student whose shape changes during its run (gradual pruning, ``compress.prune.schedules.gradual``): the cut is
applied alike to the student, to the optimizer's per-parameter state and to the moving average, so
training goes on where it was.

The run gets the cut as a function ``cut(module)`` that edits a model of the student's current shape
in place (``compress.prune.surgery.apply_cuts`` with the stage's records); this package never learns
what a cut is. The optimizer's state tensors shaped like their parameter (SGD momentum, Adam's moments)
are cut the same way, through a copy of the student that holds them in place of its weights, and the
optimizer keeps its learning-rate schedule: only its parameter lists and state are swapped.
"""

from __future__ import annotations

import copy
from typing import Callable, Protocol

import torch
import torch.nn as nn

Cut = Callable[[nn.Module], None]


class Reshape(Protocol):
    """Called by the run after every step with (step, the run's total steps now, the student); returns the
    cut to apply to the student now, or None."""

    def __call__(self, step: int, total: int, student: nn.Module) -> Cut | None: ...

    def measured(self, step: int, agreement: float, kl: float) -> None:
        """The held-out figures of the student just cut at ``step``."""


def cut_student(student: nn.Module, opt: torch.optim.Optimizer, cut: Cut, channels_last: bool) -> None:
    """Apply ``cut`` to ``student`` in place and carry ``opt`` over to its new parameters."""
    named = dict(student.named_parameters())
    name_of = {id(p): n for n, p in named.items()}
    keys = sorted({k for p in named.values() for k, v in opt.state.get(p, {}).items()
                   if isinstance(v, torch.Tensor) and v.shape == p.shape and v.ndim > 0})
    shadows = {k: _holding(student, opt, named, k) for k in keys}  # one copy per kind of state tensor
    scalars = {n: {k: v for k, v in opt.state.get(p, {}).items() if k not in keys} for n, p in named.items()}
    cut(student)
    for shadow in shadows.values():
        cut(shadow)
    if channels_last:
        student.to(memory_format=torch.channels_last)
    new = dict(student.named_parameters())
    held = {k: dict(s.named_parameters()) for k, s in shadows.items()}
    for group in opt.param_groups:
        group["params"] = [new[name_of[id(p)]] for p in group["params"]]
    opt.state.clear()
    for n, p in new.items():
        state = dict(scalars.get(n, {}))
        state.update({k: held[k][n].detach().clone() for k in keys if n in held[k]})
        if state:
            opt.state[p] = state


def _holding(student: nn.Module, opt: torch.optim.Optimizer, named: dict, key: str) -> nn.Module:
    """A copy of ``student`` whose parameters hold the optimizer's ``key`` state (zeros where it has none)."""
    shadow = copy.deepcopy(student)
    with torch.no_grad():
        for n, p in shadow.named_parameters():
            value = opt.state.get(named[n], {}).get(key)
            p.copy_(value if isinstance(value, torch.Tensor) and value.shape == p.shape else torch.zeros_like(p))
            p.grad = None
    return shadow
