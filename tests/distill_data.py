"""Tiny distillation data shared by the CPU and GPU distillation tests (the ``pair`` fixture in
``tests/conftest.py`` builds on it)."""

from __future__ import annotations

import torch
import torch.nn as nn


def tiny_net(width: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 5),
    )


def images(n: int, seed: int, size: int = 12) -> torch.Tensor:
    """Smooth colour blobs: varied enough that a random teacher spreads its top-1 over classes."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 3, 3, 3, generator=g) * 1.5
    return nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


# ema=0: the student's own weights are judged and returned (the snapshot tests compare them), unless a test sets it
FAST = dict(steps=60, batch_size=32, lr=0.2, eval_every=10, cutmix=0.0, ema=0.0)
