"""A moving average of the student's weights: what the held-out checks judge and the run returns when
``DistillConfig.ema`` > 0 (why: benchmarks/RESULTS.md, "Distillation defaults")."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


class WeightAverage:
    """An exponential moving average of a model's parameters and floating-point buffers (BatchNorm running
    statistics), with the usual warm-up: decay min(d, (1 + step) / (10 + step)), so the start does not linger."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.rebind(model)

    def rebind(self, model: nn.Module) -> None:
        """Pair the average with ``model``'s tensors again (after both were cut alike: new parameter objects)."""
        for p in self.model.parameters():
            p.requires_grad_(False)
        pairs = list(zip(self.model.parameters(), model.parameters()))
        pairs += [(a, b) for a, b in zip(self.model.buffers(), model.buffers()) if a.is_floating_point()]
        self.dst, self.src = [a for a, _ in pairs], [b for _, b in pairs]
        self.counters = [(a, b) for a, b in zip(self.model.buffers(), model.buffers()) if not a.is_floating_point()]

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.dst, self.src, 1.0 - d)
        for a, b in self.counters:
            a.copy_(b)
