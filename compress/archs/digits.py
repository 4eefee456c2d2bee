"""DigitNet: a tiny residual CNN for the embedded demo (handwritten digits as 32x32 RGB).

conv(3->16)-BN-ReLU, conv(16->32, stride 2)-BN-ReLU, a residual block at 32 channels,
conv(32->64, stride 2)-BN-ReLU, global average pooling, Linear(64->num_classes).
Use as ``--arch digits`` (alias of ``compress.archs.digits:digitnet``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

PREPROCESS = "cifar"  # 32x32 RGB, ImageNet mean/std


def conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
    )


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus identity, then ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + x)


class DigitNet(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = conv_bn(3, 16)
        self.down1 = conv_bn(16, 32, stride=2)
        self.block = ResidualBlock(32)
        self.down2 = conv_bn(32, 64, stride=2)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = F.relu(self.down1(x))
        x = self.block(x)
        x = F.relu(self.down2(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


def digitnet(num_classes: int = 10) -> DigitNet:
    """The demo network (about 0.04 M parameters)."""
    return DigitNet(num_classes=num_classes)
