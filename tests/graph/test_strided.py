"""Strided channel slices, index_select and constant indices on the channel axis (issue 49): channel maps in the
op table, so a cut propagates through ShuffleNetV2's ``x[:, 0::2]`` / ``x[:, 1::2]`` split soundly and is proved."""

from __future__ import annotations

import torch
import torch.nn as nn

from compress.graph import ops
from tests.graph.helpers import cut_prove_reload, groups_of, random_cut
from tests.shuffledet import ShuffleDet, Unit


def test_strided_slices_and_index_select_are_in_the_op_table():
    assert ops.lookup_function(torch.index_select).rule == "index_select"
    assert ops.lookup_method("index_select").rule == "index_select"


class Split(nn.Module):
    """One ShuffleNetV2 unit between a stem and a head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.conv = nn.Conv2d(6, 8, 1)
        self.unit = Unit(8, 8, 1)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.head(self.unit(self.conv(torch.relu(self.stem(x)))))


def test_shufflenet_split_is_cut_proved_and_reloaded(tmp_path):
    torch.manual_seed(0)
    model, x = Split(), torch.randn(2, 3, 8, 8)
    groups, plan, pruned = cut_prove_reload(model, x, f"{__name__}:Split", {}, tmp_path)  # stem kept (policy)
    protected = [(g.layers, [p.op for p in g.protected]) for g in groups.protected_groups()]
    assert protected == [(["stem:in"], ["input"]), (["stem:out", "conv:in"], ["policy"]), (["head:out"], ["output"])]
    assert pruned.conv.out_channels < 8 and pruned.conv.out_channels % 2 == 0  # pairs go together


def test_shufflenet_detector_protects_only_its_output():
    torch.manual_seed(0)
    model, x = ShuffleDet().eval(), torch.randn(2, 3, 64, 64)
    groups = groups_of(model, x)
    protected = groups.protected_groups()
    # before issue 49: 18 of 24 groups protected (every split and concat); now only the image, the input stem
    # (policy) and the output map
    assert [sorted({p.op for p in g.protected}) for g in protected] == [["input"], ["policy"], ["output"]]
    _, plan, pruned, diff = random_cut(model, x, ratio=0.3)
    assert plan.channels_removed > 0 and diff < 1e-4


class Indexed(nn.Module):
    """Channels read by a fixed end, a constant buffer index, index_select and a fixed start."""

    def __init__(self):
        super().__init__()
        self.stem, self.mid = nn.Conv2d(3, 6, 1), nn.Conv2d(6, 12, 1)
        self.register_buffer("pick", torch.tensor([1, 0, 2]))
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1)
        self.c, self.d = nn.Conv2d(9, 4, 1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = self.mid(self.stem(x))
        head = torch.index_select(y, 1, torch.tensor([0, 2, 1]))
        return self.a(y[:, self.pick]) + self.b(head) + self.c(y[:, 3:]) + self.d(y[:, 2:10:2])


def test_constant_indices_protect_only_the_channels_up_to_their_end(tmp_path):
    torch.manual_seed(0)
    model, x = Indexed().eval(), torch.randn(2, 3, 6, 6)
    groups, plan, pruned = cut_prove_reload(model, x, f"{__name__}:Indexed", {}, tmp_path)
    mid = next(g for g in groups.groups if "mid:out" in g.layers)
    assert mid.prunable == 2  # channels 10 and 11: after every fixed end
    assert any("fixed bounds" in p.why for p in mid.protected)
    assert pruned.mid.out_channels < 12


class FromEnd(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.a = nn.Conv2d(3, 8, 1), nn.Conv2d(2, 4, 1)

    def forward(self, x):
        return self.a(self.stem(x)[:, -2:])


def test_slices_counted_from_the_end_stay_protected():
    stem = next(g for g in groups_of(FromEnd(), torch.randn(1, 3, 4, 4)).groups if "stem:out" in g.layers)
    assert stem.prunable == 0
