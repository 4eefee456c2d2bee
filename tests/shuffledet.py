"""A ShuffleNetV2-style dense detector (issue 49), the kind edge engineers train and ship: each unit splits its
input with ``x[:, 0::2]`` / ``x[:, 1::2]`` (the split that replaces the channel shuffle in many ShuffleNetV2
implementations), runs one half through its branch and concatenates; the head returns one ``(N, 5 + classes,
H, W)`` map (objectness, 4 box values, class scores per cell). ``decode`` is its decoder for ``--decode``.

    compress prune model.pt --arch tests/shuffledet.py:shuffledet --task raw --decode tests/shuffledet.py:decode ...
"""

from __future__ import annotations

import torch
import torch.nn as nn

STRIDE = 8


def _cbr(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class Unit(nn.Module):
    """A ShuffleNetV2 unit: stride 1 splits the channels even/odd (one half passes through), stride 2 runs both."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        mid = cout // 2
        branch_in, branch_out = (cin // 2, cout - cin // 2) if stride == 1 else (cin, cout - mid)
        self.branch = nn.Sequential(_cbr(branch_in, mid), _cbr(mid, mid, 3, stride, mid, relu=False), _cbr(mid, branch_out))
        self.proj = nn.Sequential(_cbr(cin, cin, 3, stride, cin, relu=False), _cbr(cin, mid)) if stride == 2 else None

    def forward(self, x):
        if self.stride == 1:
            keep, x = x[:, 0::2], x[:, 1::2]
            return torch.cat((keep, self.branch(x)), 1)
        return torch.cat((self.proj(x), self.branch(x)), 1)


class ShuffleDet(nn.Module):
    def __init__(self, num_classes: int = 3, widths: tuple[int, ...] = (24, 48, 96), repeats: int = 2):
        super().__init__()
        self.stem = _cbr(3, widths[0], 3, 2)
        units: list[nn.Module] = []
        for cin, cout in zip(widths, widths[1:]):
            units.append(Unit(cin, cout, 2))
            units += [Unit(cout, cout, 1) for _ in range(repeats)]
        self.units = nn.Sequential(*units)
        self.neck = _cbr(widths[-1], widths[-1], 3, 1, widths[-1], relu=False)
        self.head = nn.Conv2d(widths[-1], 5 + num_classes, 1)

    def forward(self, x):
        return self.head(self.neck(self.units(self.stem(x))))


def shuffledet(num_classes: int = 3) -> ShuffleDet:
    return ShuffleDet(num_classes)


def decode(outputs: torch.Tensor, input_size, score: float = 0.05, top: int = 100):
    """Per image (boxes xyxy in pixels of the model input, scores, labels): a cell's box is centred at
    ``(j + sigmoid(tx), i + sigmoid(ty)) * stride`` with size ``exp(tw), exp(th)`` strides, its score
    ``sigmoid(objectness) * sigmoid(class)``, then class-wise NMS."""
    from torchvision.ops import batched_nms

    h, w = outputs.shape[-2:]
    stride_y, stride_x = input_size[0] / h, input_size[1] / w
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    results = []
    for o in outputs.float():
        obj, box, cls = o[0].sigmoid(), o[1:5], o[5:].sigmoid()
        cx = (xs + box[0].sigmoid()) * stride_x
        cy = (ys + box[1].sigmoid()) * stride_y
        bw, bh = box[2].clamp(-4, 4).exp() * stride_x, box[3].clamp(-4, 4).exp() * stride_y
        boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1).reshape(-1, 4)
        conf, labels = (obj.unsqueeze(0) * cls).reshape(cls.shape[0], -1).max(0)
        keep = conf >= score
        boxes, conf, labels = boxes[keep], conf[keep], labels[keep]
        keep = batched_nms(boxes, conf, labels, 0.5)[:top]
        results.append((boxes[keep], conf[keep], labels[keep]))
    return results
