"""Max pooling that returns its indices and the max unpooling that consumes them (SegNet/ENet decoders): both are
per channel, so the pooled tensor, its indices and the unpooled input share one channel group. Before they were
in the op table every channel through them was protected, and such an encoder-decoder could not be cut at all."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.graph.helpers import cut_prove_reload, groups_of


class Unpooling(nn.Module):
    """stem -> conv -> max pool (with indices) -> conv -> max unpool (those indices) -> conv; as functions or
    modules (the stem: a model's first conv is protected by default)."""

    def __init__(self, modules: bool = False, dims: int = 2):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        self.modules_form, self.dims = modules, dims
        self.stem, self.a, self.b, self.c = conv(3, 8, 3, padding=1), conv(8, 16, 3, padding=1), conv(16, 16, 3, padding=1), conv(16, 4, 1)
        pool, unpool = (nn.MaxPool2d, nn.MaxUnpool2d) if dims == 2 else (nn.MaxPool1d, nn.MaxUnpool1d)
        self.pool, self.unpool = pool(2, 2, return_indices=True), unpool(2)

    def forward(self, x):
        x = F.relu(self.a(F.relu(self.stem(x))))
        if self.modules_form:
            y, idx = self.pool(x)
            y = self.unpool(F.relu(self.b(y)), idx)
        else:
            pool = F.max_pool2d if self.dims == 2 else F.max_pool1d
            unpool = F.max_unpool2d if self.dims == 2 else F.max_unpool1d
            y, idx = pool(x, 2, 2, return_indices=True)
            y = unpool(F.relu(self.b(y)), idx, 2)
        return self.c(y + x)  # the skip: the unpooled channels meet the encoder's again


def build(modules: bool = False, dims: int = 2) -> nn.Module:
    torch.manual_seed(0)
    return Unpooling(modules, dims).eval()


@pytest.mark.parametrize("modules", [False, True], ids=["functions", "modules"])
@pytest.mark.parametrize("dims", [2, 1])
def test_indices_couple_pool_and_unpool(tmp_path, modules, dims):
    model = build(modules, dims)
    x = torch.randn(2, 3, *((16, 16) if dims == 2 else (16,)))
    groups = groups_of(model, x)
    coupled = next(g for g in groups.groups if "a:out" in g.layers)
    assert "b:out" in coupled.layers and coupled.prunable == 16 and not coupled.protected
    _, plan, pruned = cut_prove_reload(model, x, f"{__name__}:build", {"modules": modules, "dims": dims}, tmp_path)
    assert pruned.a.out_channels == pruned.b.out_channels == pruned.b.in_channels < 16


def test_pool_without_indices_stays_a_spatial_op():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3), nn.MaxPool2d(2), nn.Conv2d(8, 4, 1)).eval()
    groups = groups_of(model, torch.randn(1, 3, 12, 12))
    assert next(g for g in groups.groups if "1:out" in g.layers).prunable == 8
