"""Layer widths that TensorRT and tensor-core kernels pad: channel counts not a multiple of 8.

A pruned conv with 29 output channels runs at the speed of 32 on FP16/INT8 tensor cores, so the
MAC count overstates the gain; the pruner can round widths to ``multiple`` to avoid that.
Which layers have such a width is the caller's knowledge (``compress.layers.registry.output_width``
for the pruner): export stays generic.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn


def misaligned_widths(model: nn.Module, multiple: int = 8, *,
                      width_of: Callable[[nn.Module], int | None]) -> list[tuple[str, int]]:
    """``[(layer name, width)]`` for every layer whose ``width_of`` (e.g. a conv's out_channels, a
    Linear's out_features; None for layers without one) is not divisible by ``multiple``.

    Includes the classifier (e.g. 10 classes): it is padded too, though it cannot be changed.
    """
    if multiple < 1:
        raise ValueError("multiple must be >= 1")
    found = []
    for name, module in model.named_modules():
        width = width_of(module)
        if width is not None and width % multiple:
            found.append((name, int(width)))
    return found
