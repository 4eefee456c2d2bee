"""Tiny models for the export tests; importable by the memory probe's child process."""

from __future__ import annotations

import torch
import torch.nn as nn


class TinyNet(nn.Module):
    """Conv-BN-ReLU x2, global pooling, linear: the shape of a small CNN classifier (3x16x16 input)."""

    def __init__(self, width: int = 8, classes: int = 5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 12, 3, stride=2, padding=1), nn.BatchNorm2d(12), nn.ReLU(),
        )
        self.head = nn.Linear(12, classes)

    def forward(self, x):
        x = self.features(x)
        return self.head(x.mean(dim=(2, 3)))


def tiny(seed: int = 0, width: int = 8) -> TinyNet:
    """A TinyNet with non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(int(seed))
    model = TinyNet(width=int(width))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    # Centre the classifier on the mean pooled feature of random inputs: the arg-max class then
    # varies from input to input, so top-1 checks mean something.
    model.eval()
    with torch.no_grad():
        feats = model.features(torch.randn(256, 3, 16, 16)).mean(dim=(2, 3))
        feats = feats - feats.mean(0)
        model.head.weight.mul_(1.0 / feats.std().clamp_min(1e-6))
        model.head.bias.copy_(-model.head.weight @ model.features(torch.randn(256, 3, 16, 16)).mean(dim=(0, 2, 3)))
    return model


def big(seed: int = 0) -> nn.Module:
    """A model with about 64 MB of weights (one 4096x4096 linear layer) for memory tests."""
    torch.manual_seed(int(seed))
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4096), nn.Linear(4096, 4096), nn.Linear(4096, 5)).eval()
