"""SegDigitNet: a tiny encoder-decoder for the embedded segmentation demo (digits on a 32x32 canvas).

Encoder: conv(3->16)-BN-ReLU at full size, conv(16->32, stride 2) and a residual block at 1/2, conv(32->64,
stride 2) and a residual block at 1/4. Decoder: upsample x2, concatenate the 1/2 features, conv(96->48)-BN-
ReLU, a 1x1 classifier, bilinear upsample to the input size. Returns ``{"out": logits}`` as torchvision's
segmentation models do (11 classes: background and one per digit). Use as ``--arch segdigits``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from compress.archs.digits import ResidualBlock, conv_bn

PREPROCESS = "cifar"  # 32x32 RGB, ImageNet mean/std
NUM_CLASSES = 11  # background + digits 0-9


class SegDigitNet(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.stem = conv_bn(3, 16)
        self.down1 = conv_bn(16, 32, stride=2)
        self.block1 = ResidualBlock(32)
        self.down2 = conv_bn(32, 64, stride=2)
        self.block2 = ResidualBlock(64)
        self.fuse = conv_bn(64 + 32, 48)
        self.classifier = nn.Conv2d(48, num_classes, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[-2:]
        x = F.relu(self.stem(x))
        half = self.block1(F.relu(self.down1(x)))
        quarter = self.block2(F.relu(self.down2(half)))
        up = F.interpolate(quarter, scale_factor=2.0, mode="bilinear", align_corners=False)
        y = F.relu(self.fuse(torch.cat([up, half], 1)))
        logits = F.interpolate(self.classifier(y), size=size, mode="bilinear", align_corners=False)
        return {"out": logits}


def segdigitnet(num_classes: int = NUM_CLASSES) -> SegDigitNet:
    """The segmentation demo network (about 0.15 M parameters)."""
    return SegDigitNet(num_classes=num_classes)
