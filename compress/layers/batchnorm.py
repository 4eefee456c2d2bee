"""BatchNorm and InstanceNorm: per-channel statistics and affine on axis 1 (``chan`` slot)."""

from __future__ import annotations

import torch.nn as nn

from compress.layers.base import per_channel

TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
         nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)

HANDLER = per_channel("num_features", ("weight", "bias", "running_mean", "running_var"), probe="norm")
