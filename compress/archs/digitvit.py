"""DigitViT: a small vision transformer for 32x32 RGB images (the embedded digits, CIFAR).

torchvision's ``VisionTransformer`` (``nn.MultiheadAttention`` blocks, a class token) at patch 4:
64 patches + the class token, width 64, 4 heads of 16, MLP 128, 4 layers (about 11 M MACs).
Use as ``--arch compress.archs.digitvit:digitvit``; ``benchmarks/vit_recovery.py`` trains one here
(nothing downloaded) and measures pruning and recovery on it.
"""

from __future__ import annotations

import torch.nn as nn

PREPROCESS = "cifar"  # 32x32 RGB, ImageNet mean/std


def digitvit(num_classes: int = 10, layers: int = 4, width: int = 64, heads: int = 4, mlp: int = 128) -> nn.Module:
    from torchvision.models.vision_transformer import VisionTransformer

    return VisionTransformer(image_size=32, patch_size=4, num_layers=layers, num_heads=heads, hidden_dim=width,
                             mlp_dim=mlp, num_classes=num_classes)
