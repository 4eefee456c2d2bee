"""CIFAR ResNets (He et al. 2016, "option A" zero-padding shortcuts).

Matches the widely used public checkpoints (keys ``conv1``, ``bn1``, ``layer{1,2,3}.{i}.conv1|bn1|
conv2|bn2``, ``linear``). Use as ``--arch compress.archs.cifar_resnet:resnet20`` (or ``cifar_resnet20``
for short). The parameter-free shortcut pads zero channels on both sides: it couples the residual
channels of one stage to a shifted range of the next, which the dependency graph must respect.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

PREPROCESS = "cifar"  # the preset these models expect (32x32, ImageNet mean/std)


class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != planes:
            pad = planes // 4
            self.shortcut = LambdaLayer(
                lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad), "constant", 0)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return F.relu(out)


class CifarResNet(nn.Module):
    def __init__(self, num_blocks: list[int], num_classes: int = 10):
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(32, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(64, num_blocks[2], stride=2)
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def _make_layer(self, planes: int, n: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        return self.linear(out)


def _depth(n: int):
    def factory(num_classes: int = 10) -> CifarResNet:
        return CifarResNet([n, n, n], num_classes=num_classes)

    factory.__name__ = f"resnet{6 * n + 2}"
    factory.__doc__ = f"CIFAR ResNet-{6 * n + 2} ({n} BasicBlocks per stage)."
    return factory


resnet20 = _depth(3)
resnet32 = _depth(5)
resnet44 = _depth(7)
resnet56 = _depth(9)
resnet110 = _depth(18)
