"""Layer handlers: a user's own layer registered with ``compress.register_layer`` prunes soundly
(cut, proof, reload); the same layer unregistered stays protected; the registries are explicit."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import compress
from compress.errors import UsageError
from compress.graph import ops, rules
from compress.layers import registry
from tests.graph.helpers import cut_prove_reload, groups_of, random_cut


def _scale_layer(name: str) -> type:
    """A user's layer: one learned scale per channel (two identical classes: one gets registered)."""

    def __init__(self, channels: int):
        nn.Module.__init__(self)
        self.channels = channels
        self.weight = nn.Parameter(torch.linspace(0.5, 1.5, channels))

    def forward(self, x):
        return x * self.weight[None, :, None, None]

    return type(name, (nn.Module,), {"__init__": __init__, "forward": forward})


ChannelScale = _scale_layer("ChannelScale")  # registered below, as a user would
UnknownScale = _scale_layer("UnknownScale")  # never registered
compress.register_layer(ChannelScale, compress.per_channel("channels", ("weight",)))


class ScaledNet(nn.Module):
    def __init__(self, known: bool = True):
        super().__init__()
        self.stem = nn.Conv2d(3, 5, 3, padding=1)  # the input stem is kept by default policy
        self.a = nn.Conv2d(5, 8, 3, padding=1)
        self.s = (ChannelScale if known else UnknownScale)(8)
        self.b = nn.Conv2d(8, 6, 3, padding=1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        y = self.b(F.relu(self.s(self.a(F.relu(self.stem(x))))))
        return self.fc(y.mean((2, 3)))


def test_registered_user_layer_is_cut_proved_and_reloaded(tmp_path):
    torch.manual_seed(0)
    model, x = ScaledNet(known=True), torch.randn(2, 3, 8, 8)
    groups, plan, pruned = cut_prove_reload(model, x, f"{__name__}:ScaledNet", {"known": True}, tmp_path)
    group = next(g for g in groups.groups if "a:out" in g.layers)
    assert "s:chan" in group.layers and group.prunable == 8
    assert pruned.s.channels == pruned.s.weight.shape[0] == pruned.a.out_channels == pruned.b.in_channels < 8
    assert {c.name for c in plan.cuts} >= {"a", "s", "b"}


def test_unregistered_user_layer_stays_protected():
    model, x = ScaledNet(known=False), torch.randn(2, 3, 8, 8)
    groups = groups_of(model, x)
    group = next(g for g in groups.groups if "a:out" in g.layers)
    assert group.prunable == 0
    assert any("fixed channel count" in p.why for p in group.protected)  # its weight cannot follow a cut
    _, plan, pruned, diff = random_cut(model, x)
    assert pruned.s.weight.shape == (8,) and pruned.a.out_channels == 8 and diff == 0.0


def test_register_layer_refuses_what_it_cannot_use():
    handler = compress.per_channel("channels", ("weight",))
    with pytest.raises(UsageError, match="already has a handler"):
        compress.register_layer(ChannelScale, handler)
    with pytest.raises(UsageError, match="not an nn.Module class"):
        compress.register_layer(torch.Tensor, handler)
    with pytest.raises(UsageError, match="not a LayerHandler"):
        compress.register_layer(UnknownScale, object())
    assert registry.handler_for(UnknownScale(2)) is None


def test_every_table_entry_names_a_registered_rule():
    names = {r.rule for table in (ops.MODULE_TABLE, ops.FUNCTION_TABLE, ops.METHOD_TABLE) for r in table.values()}
    assert names <= set(rules.RULES), sorted(names - set(rules.RULES))
    assert all(callable(fn) for fn in rules.RULES.values())
    for layer in (nn.Conv2d, nn.ConvTranspose1d, nn.Linear, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.PReLU):
        assert registry.registered(layer) is not None and layer not in ops.MODULE_TABLE
