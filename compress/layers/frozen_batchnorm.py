"""torchvision's ``FrozenBatchNorm2d``, the norm of its pretrained detection and segmentation backbones: the
statistics and the affine held as buffers, no channel count kept (the width is the buffers' length). For the
graph, the cut and the importance probe it is a BatchNorm; nothing re-estimates or trains its buffers."""

from __future__ import annotations

from torchvision.ops.misc import FrozenBatchNorm2d

from compress.layers.base import per_channel

TYPES = (FrozenBatchNorm2d,)

HANDLER = per_channel(None, ("weight", "bias", "running_mean", "running_var"), probe="norm")
