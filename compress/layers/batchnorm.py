"""BatchNorm and InstanceNorm: per-channel statistics and affine on axis 1 (``chan`` slot)."""

from __future__ import annotations

import torch.nn as nn

from compress.layers.base import per_channel

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
INSTANCE_NORMS = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
TYPES = BATCH_NORMS + INSTANCE_NORMS

HANDLER = per_channel("num_features", ("weight", "bias", "running_mean", "running_var"), probe="norm")
