"""torchvision's FrozenBatchNorm2d (compress/layers/frozen_batchnorm.py), the norm of its pretrained detection
backbones: a ResNet built with it is cut through its residual stages, proved and reloaded, like one with
BatchNorm2d; before, the traced buffer arithmetic left the cut unproved and nothing was written."""

from __future__ import annotations

import torch
import torchvision
from torchvision.ops.misc import FrozenBatchNorm2d

from tests.graph.helpers import cut_prove_reload, groups_of


def frozen_resnet(num_classes: int = 5):
    """A torchvision ResNet-18 with FrozenBatchNorm2d and non-trivial frozen statistics."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=num_classes, norm_layer=FrozenBatchNorm2d)
    for m in model.modules():
        if isinstance(m, FrozenBatchNorm2d):
            n = m.weight.shape[0]
            m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.1)
            m.running_mean.normal_(0, 0.1), m.running_var.uniform_(0.5, 2.0)
            assert n == m.running_var.shape[0]
    return model.eval()


def test_frozen_batchnorm_resnet_is_cut_proved_and_reloaded(tmp_path):
    model, x = frozen_resnet(), torch.randn(2, 3, 64, 64)
    groups = groups_of(model, x)
    stem_group = next(g for g in groups.groups if "layer1.0.conv1:out" in g.layers)
    assert "layer1.0.bn1:chan" in stem_group.layers and stem_group.prunable == 64
    assert not [p for g in groups.groups for p in g.protected if "bn" in p.layer]  # no norm protects a channel
    _, plan, pruned = cut_prove_reload(model, x, f"{__name__}:frozen_resnet", {}, tmp_path)
    bn = pruned.layer1[0].bn1
    assert bn.weight.shape == bn.running_mean.shape == (pruned.layer1[0].conv1.out_channels,)
    assert pruned.layer1[0].conv1.out_channels < 64
