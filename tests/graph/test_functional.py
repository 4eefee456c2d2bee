"""Functional ops whose parameters are module attributes (timm's BatchNormAct2d, Conv2dSame,
custom layers calling F.linear/F.conv2d), class tokens, size asserts: prunable and proven."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.graph.helpers import groups_of, random_cut
from tests.toy_models import randomize_norms


class BNAct(nn.BatchNorm2d):
    """BatchNorm fused with its activation, as timm's BatchNormAct2d: traced to F.batch_norm."""

    def forward(self, x):
        torch._assert(x.ndim == 4, "expected 4D input")
        x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.1, self.eps)
        return F.relu(x)


class SameConv(nn.Conv2d):
    """A Conv2d subclass calling F.conv2d itself (timm's Conv2dSame)."""

    def forward(self, x):
        return F.conv2d(F.pad(x, [1, 1, 1, 1]), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class OwnLinear(nn.Module):
    """A custom layer owning bare parameters used by F.linear (no module type to rewrite)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.w = nn.Parameter(torch.randn(cout, cin) / cin ** 0.5)
        self.b = nn.Parameter(torch.randn(cout))

    def forward(self, x):
        return F.linear(x, self.w, self.b)


class TimmLikeCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(3, 8, 3, padding=1), BNAct(8)
        self.c1, self.bn1 = SameConv(8, 16, 3, bias=False), BNAct(16)
        self.dw, self.bn2 = SameConv(16, 16, 3, groups=16, bias=False), BNAct(16)
        self.pw, self.bn3 = nn.Conv2d(16, 8, 1, bias=False), BNAct(8)
        self.gn = nn.GroupNorm(4, 8)
        self.head = OwnLinear(8, 12)
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        x = self.bn0(self.stem(x))
        y = self.bn3(self.pw(self.bn2(self.dw(self.bn1(self.c1(x))))))
        y = F.group_norm(y + x, 4, self.gn.weight, self.gn.bias)
        h = F.relu(self.head(y.mean((2, 3))))
        return self.fc(h)


class TokenModel(nn.Module):
    """Class token (expanded parameter) concatenated to tokens, position embedding, size checks."""

    def __init__(self, dim=16):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, 4)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 5, dim))
        self.fc1, self.fc2 = nn.Linear(dim, 24), nn.Linear(24, dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        b, n, c = x.shape
        torch._assert(n // 2 == 2, "four patches")
        x = torch.cat([self.cls.expand(b, -1, -1), x], dim=1) + self.pos
        x = x + self.fc2(F.gelu(self.fc1(x)))
        return self.head(x[:, 0])


def _build(cls, size):
    torch.manual_seed(0)
    return randomize_norms(cls().eval()), torch.randn(2, 3, size, size)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_functional_layers_prune_and_match_the_zeroed_original(seed):
    model, x = _build(TimmLikeCNN, 8)
    groups = groups_of(model, x)
    assert not [p for g in groups.groups for p in g.protected if "unknown op" in p.why]
    _, plan, pruned, diff = random_cut(model, x, seed=seed)
    assert plan.channels_removed > 0 and plan.macs_after < plan.macs_before
    with torch.no_grad():
        assert diff <= 1e-4 * max(1.0, float(model(x).abs().max()))
    # the owners' width attributes follow the cut, so their own forward still runs
    assert pruned.bn1.num_features == pruned.bn1.weight.shape[0] == pruned.c1.out_channels
    assert pruned.dw.groups == pruned.dw.in_channels == pruned.dw.weight.shape[0]
    assert pruned.head.w.shape[1] == pruned.gn.weight.shape[0]


def test_functional_conv_gets_macs_and_batchnormact_a_probe():
    model, x = _build(TimmLikeCNN, 8)
    graph = groups_of(model, x).graph
    called = {c.module: c for c in graph.calls}
    assert called["c1"].kind == "conv" and called["dw"].groups == 16
    probed = {p.module for p in graph.probes}
    assert {"bn0", "bn1", "bn2", "bn3"} <= probed and "c1" not in probed  # BN output scores the conv


def test_class_token_and_position_embedding_follow_the_embedding_width():
    model, x = _build(TokenModel, 8)
    groups = groups_of(model, x, prune_stem=True)
    stream = next(g for g in groups.groups if "patch:out" in g.layers)
    assert "cls:param" in stream.layers and "pos:param" in stream.layers
    assert stream.prunable == 16
    _, plan, pruned, diff = random_cut(model, x, seed=1, prune_stem=True)
    assert pruned.cls.shape[-1] == pruned.pos.shape[-1] == pruned.patch.out_channels < 16
    with torch.no_grad():
        assert diff <= 1e-4 * max(1.0, float(model(x).abs().max()))


def test_weight_computed_at_run_time_is_protected():
    class StdConv(nn.Conv2d):  # weight standardisation: statistics over the input channels
        def forward(self, x):
            w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None, training=True,
                             momentum=0.0, eps=1e-5).reshape_as(self.weight)
            return F.conv2d(x, w, self.bias, self.stride, self.padding)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.fc = nn.Conv2d(3, 8, 3, padding=1), StdConv(8, 8, 3, padding=1), nn.Linear(8, 2)

        def forward(self, x):
            return self.fc(self.b(F.relu(self.a(x))).mean((2, 3)))

    model, x = Net().eval(), torch.randn(1, 3, 8, 8)
    groups = groups_of(model, x, prune_stem=True)
    a_out = next(g for g in groups.groups if "a:out" in g.layers)
    assert a_out.prunable == 0 and any("run time" in p.why for p in a_out.protected)


def test_slice_covering_the_channel_axis_follows_a_cut():
    class Ghost(torch.nn.Module):
        def __init__(self, cover):
            super().__init__()
            self.a, self.b, self.cover = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 3, padding=1, groups=8), cover
            self.fc = nn.Linear(16, 2)

        def forward(self, x):
            y = self.a(x)
            out = torch.cat([y, self.b(y)], dim=1)[:, :self.cover]
            return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1)) if self.cover == 16 else out.mean()

    x = torch.randn(2, 3, 6, 6)
    groups = groups_of(Ghost(16).eval(), x, prune_stem=True)
    assert next(g for g in groups.groups if "a:out" in g.layers).prunable > 0
    _, plan, pruned, diff = random_cut(Ghost(16).eval(), x, prune_stem=True)
    assert plan.channels_removed > 0 and diff < 1e-5
    groups = groups_of(Ghost(15).eval(), x, prune_stem=True)  # a real crop stays protected
    assert next(g for g in groups.groups if "a:out" in g.layers).prunable == 0
