"""Feature matching for distillation: the student's stage outputs follow the teacher's.

Pruning keeps every protected channel space — in a ResNet the residual stream between stages —
at its original width, so the top-level stages of student and teacher still emit tensors of the
same shape. Those are matched by a normalised squared error, ``mean((s - t)^2) / mean(t^2)`` per
stage, averaged over stages; stages whose shapes differ (a pruned width) or that return no single
tensor are left out. Found by name and shape on one example batch, never guessed.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class FeatureMatch:
    def __init__(self, student: nn.Module, teacher: nn.Module, example: torch.Tensor):
        self._s: dict[str, torch.Tensor] = {}
        self._t: dict[str, torch.Tensor] = {}
        self._hooks: list = []
        teachers = dict(teacher.named_children())
        pairs = [(n, m, teachers[n]) for n, m in student.named_children() if n in teachers]
        shapes_s, shapes_t = {}, {}
        probes = [m.register_forward_hook(_shape_into(shapes_s, n)) for n, m, _ in pairs]
        probes += [t.register_forward_hook(_shape_into(shapes_t, n)) for n, _, t in pairs]
        was_s, was_t = student.training, teacher.training
        try:
            with torch.no_grad():
                student.eval()(example)
                teacher.eval()(example)
        finally:
            for h in probes:
                h.remove()
            student.train(was_s)
            teacher.train(was_t)
        self.names = [n for n, _, _ in pairs
                      if shapes_s.get(n) is not None and shapes_s.get(n) == shapes_t.get(n) and len(shapes_s[n]) >= 3]
        for n, m, t in pairs:
            if n in self.names:
                self._hooks.append(m.register_forward_hook(_store_into(self._s, n)))
                self._hooks.append(t.register_forward_hook(_store_into(self._t, n)))

    def loss(self) -> torch.Tensor:
        terms = [(self._s[n].float() - self._t[n].float().detach()).pow(2).mean() / (self._t[n].float().pow(2).mean() + 1e-6)
                 for n in self.names if n in self._s and n in self._t]
        self._s.clear()
        self._t.clear()
        return torch.stack(terms).mean() if terms else torch.zeros(())

    def close(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()


def _shape_into(shapes: dict, name: str):
    def hook(_module, _inputs, output):
        shapes[name] = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else None
    return hook


def _store_into(store: dict, name: str):
    def hook(_module, _inputs, output):
        store[name] = output
    return hook
