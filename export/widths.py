"""Layer widths that TensorRT and tensor-core kernels pad: channel counts not a multiple of 8.

A pruned conv with 29 output channels runs at the speed of 32 on FP16/INT8 tensor cores, so the
MAC count overstates the gain; the pruner can round widths to ``multiple`` to avoid that.
"""

from __future__ import annotations

import torch.nn as nn


def misaligned_widths(model: nn.Module, multiple: int = 8) -> list[tuple[str, int]]:
    """``[(layer name, width)]`` for Conv (out_channels) and Linear (out_features) not divisible by ``multiple``.

    Includes the classifier (e.g. 10 classes): it is padded too, though it cannot be changed.
    """
    if multiple < 1:
        raise ValueError("multiple must be >= 1")
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            width = module.out_channels
        elif isinstance(module, nn.Linear):
            width = module.out_features
        else:
            continue
        if width % multiple:
            found.append((name, int(width)))
    return found
