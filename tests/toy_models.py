"""One tiny module per graph pattern the dependency graph must handle."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def cbr(cin, cout, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Chain(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = cbr(3, 8), cbr(8, 12, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.b(self.a(x))), 1))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.c1, self.c2 = cbr(3, 8), cbr(8, 6), nn.Conv2d(6, 8, 3, 1, 1)
        self.c3 = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.stem(x)
        y = F.relu(self.c2(self.c1(x)) + x)
        y = y - self.c3(y)  # sub couples too
        return self.fc(y.mean((2, 3)))


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.left, self.right = cbr(3, 6), cbr(6, 5), cbr(6, 7)
        self.head = nn.Conv2d(12, 6, 1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = self.stem(x)
        y = torch.cat([self.left(x), self.right(x)], dim=1)
        return self.fc(F.adaptive_avg_pool2d(self.head(y), 1).flatten(1))


class Depthwise(nn.Module):
    """pointwise -> depthwise (x2 multiplier) -> depthwise -> pointwise (MobileNet-style)."""

    def __init__(self):
        super().__init__()
        self.stem = cbr(3, 4)
        self.pw = cbr(4, 8)
        self.dw = nn.Sequential(nn.Conv2d(8, 16, 3, 1, 1, groups=8), nn.BatchNorm2d(16), nn.ReLU6())
        self.dw2 = nn.Conv2d(16, 16, 3, 1, 1, groups=16)
        self.proj = nn.Conv2d(16, 6, 1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.proj(self.dw2(self.dw(self.pw(self.stem(x))))).mean((2, 3)))


class Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = cbr(3, 8)
        self.a = cbr(8, 12)
        self.g = cbr(12, 12, groups=3)
        self.c = nn.Conv2d(12, 8, 1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.stem(x)
        return self.fc(F.relu(self.c(self.g(self.a(x))) + x).mean((2, 3)))


class SqueezeExcite(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.body = cbr(3, 8), cbr(8, 10)
        self.fc1, self.fc2 = nn.Conv2d(10, 4, 1), nn.Conv2d(4, 10, 1)
        self.lin1, self.lin2 = nn.Linear(10, 3), nn.Linear(3, 10)
        self.out = nn.Linear(10, 3)

    def forward(self, x):
        y = self.body(self.stem(x))
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(y, 1)))))
        y = y * s
        b, c, _, _ = y.size()  # a second SE written with view(b, c) / view(b, c, 1, 1)
        t = torch.sigmoid(self.lin2(F.relu(self.lin1(y.mean((2, 3)).view(b, c))))).view(b, c, 1, 1)
        y = y * t
        return self.out(y.mean((2, 3)))


class FlattenLinear(nn.Module):
    """A channel becomes H*W features of the classifier."""

    def __init__(self):
        super().__init__()
        self.stem, self.body = cbr(3, 6), cbr(6, 5, 2)
        self.fc = nn.Linear(5 * 4 * 4, 7)
        self.out = nn.Linear(7, 3)

    def forward(self, x):
        y = self.body(self.stem(x))
        return self.out(F.relu(self.fc(y.view(y.size(0), -1))))


class Chunk(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.body = cbr(3, 4), cbr(4, 8)
        self.a, self.b = nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        y1, y2 = self.body(self.stem(x)).chunk(2, dim=1)
        return self.fc((self.a(y1) * self.b(y2)).mean((2, 3)))


class PadShortcut(nn.Module):
    """The CIFAR ResNet 'option A' shortcut: zero channels padded on both sides."""

    def __init__(self):
        super().__init__()
        self.stem = cbr(3, 4)
        self.c1, self.c2 = cbr(4, 8, 2), nn.Conv2d(8, 8, 3, 1, 1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.stem(x)
        y = self.c2(self.c1(x)) + F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2), "constant", 0)
        return self.fc(F.relu(y).mean((2, 3)))


class Transposed(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.down = cbr(3, 4), cbr(4, 8, 2)
        self.up = nn.ConvTranspose2d(8, 6, 2, stride=2)
        self.head = nn.Conv2d(6, 3, 1)

    def forward(self, x):
        return self.head(F.relu(self.up(self.down(self.stem(x))))).mean((2, 3))


class ChannelsLast(nn.Module):
    """ConvNeXt-style block: permute, LayerNorm and Linears over the channel axis, a learned
    per-channel scale, a residual add."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 1, 1)
        self.dw = nn.Conv2d(8, 8, 3, 1, 1, groups=8)
        self.norm = nn.LayerNorm(8)
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 8)
        self.scale = nn.Parameter(torch.rand(8, 1, 1) + 0.5)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        x = self.stem(x)
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.fc2(F.gelu(self.fc1(self.norm(y)))).permute(0, 3, 1, 2)
        return self.out((x + self.scale * y).mean((2, 3)))


class Norms(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, 1, 1)
        self.a = nn.Conv2d(4, 8, 3, 1, 1)
        self.gn = nn.GroupNorm(4, 8)
        self.act = nn.PReLU(8)
        self.b = nn.Conv2d(8, 6, 1)
        self.inorm = nn.InstanceNorm2d(6, affine=True)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        y = self.act(self.gn(self.a(self.stem(x))))
        return self.fc(self.inorm(self.b(y)).mean((2, 3)))


class Shared(nn.Module):
    """One conv applied twice: its input slots from both calls must agree."""

    def __init__(self):
        super().__init__()
        self.stem, self.b1, self.b2 = cbr(3, 6), cbr(6, 6), cbr(6, 6)
        self.shared = nn.Conv2d(6, 5, 1)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        x = self.stem(x)
        return self.fc((self.shared(self.b1(x)) + self.shared(self.b2(x))).mean((2, 3)))


class Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv1d(3, 6, 3, padding=1)
        self.a = nn.Sequential(nn.Conv1d(6, 8, 3, padding=1), nn.BatchNorm1d(8), nn.ReLU())
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.a(self.stem(x.mean(3))).amax(2))


class UnknownOp(nn.Module):
    """torch.roll along channels is not in the op table: what flows through it is protected."""

    def __init__(self):
        super().__init__()
        self.stem, self.a, self.b = cbr(3, 4), cbr(4, 8), cbr(8, 8)
        self.c = cbr(8, 6)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        y = self.a(self.stem(x))
        y = torch.roll(y, 1, dims=1)
        return self.fc(self.c(self.b(y)).mean((2, 3)))


TOYS = {
    "chain": (Chain, (2, 3, 8, 8)),
    "residual": (Residual, (2, 3, 8, 8)),
    "concat": (Concat, (2, 3, 8, 8)),
    "depthwise": (Depthwise, (2, 3, 8, 8)),
    "grouped": (Grouped, (2, 3, 8, 8)),
    "squeeze_excite": (SqueezeExcite, (2, 3, 8, 8)),
    "flatten_linear": (FlattenLinear, (2, 3, 8, 8)),
    "chunk": (Chunk, (2, 3, 8, 8)),
    "pad_shortcut": (PadShortcut, (2, 3, 8, 8)),
    "transposed": (Transposed, (2, 3, 8, 8)),
    "channels_last": (ChannelsLast, (2, 3, 8, 8)),
    "norms": (Norms, (2, 3, 8, 8)),
    "shared": (Shared, (2, 3, 8, 8)),
    "conv1d": (Conv1dNet, (2, 3, 8, 8)),
    "unknown_op": (UnknownOp, (2, 3, 8, 8)),
}


def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, so a wrong cut shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            if getattr(m, "weight", None) is not None and isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
    return model.eval()


def build(name: str, seed: int = 0):
    cls, shape = TOYS[name]
    torch.manual_seed(seed)
    model = randomize_norms(cls(), seed)
    return model, torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
