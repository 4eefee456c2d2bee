"""Radix / path reshapes: the channel axis C viewed as (k, C/k) with k fixed in the code and C/k
computed at run time (timm's SplitAttn, SelectiveKernelAttn), and flattened back."""

from __future__ import annotations

import copy
import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F
import pytest

from compress.artifacts.cuts import Cut
from compress.errors import PruneError
from compress.prune.surgery import apply_cuts
from compress.prune.verify import check_cut

from tests.graph.helpers import groups_of, random_cut


class Radix(nn.Module):
    """SplitAttn in miniature: k paths of C/k channels, attention softmaxed over the paths."""

    def __init__(self, k: int = 2, c: int = 6, card: int = 1, width_in_code: bool = False):
        super().__init__()
        self.k, self.c, self.card, self.width_in_code = k, c, card, width_in_code
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.conv = nn.Conv2d(8, k * c, 3, padding=1)
        self.fc1, self.fc2 = nn.Conv2d(c, 4, 1), nn.Conv2d(4, k * c, 1)
        self.head = nn.Conv2d(c, 5, 1)

    def forward(self, x):
        x = F.relu(self.conv(F.relu(self.stem(x))))
        b, rc, h, w = x.shape
        width = self.c if self.width_in_code else rc // self.k
        x = x.reshape((b, self.k, width, h, w))
        a = self.fc2(F.relu(self.fc1(x.sum(dim=1).mean((2, 3), keepdim=True))))
        a = a.view(b, self.card, self.k // self.card, -1).transpose(1, 2)  # timm's RadixSoftmax
        a = F.softmax(a, dim=1).reshape(b, -1).view(b, -1, 1, 1)
        return self.head((x * a.reshape((b, self.k, rc // self.k, 1, 1))).sum(dim=1))


def _group(groups, layer):
    return next(g for g in groups.groups if layer in g.layers)


@pytest.mark.parametrize("k,card", [(2, 1), (4, 2)])
def test_radix_round_trip_is_cut_and_proved(k, card):
    model, x = Radix(k=k, card=card).eval(), torch.randn(2, 3, 8, 8)
    groups = groups_of(model, x)
    paths = _group(groups, "conv:out")
    assert {"fc1:in", "fc2:out", "head:in"} <= set(paths.layers) and not paths.protected
    _, plan, pruned, diff = random_cut(model, x)
    conv = next(c for c in plan.cuts if c.name == "conv" and c.role == "out")
    local = [[i % 6 for i in conv.keep if i // 6 == p] for p in range(k)]
    assert len(conv.keep) < k * 6 and all(lst == local[0] for lst in local)  # same channels in every path
    assert pruned.conv.out_channels == k * pruned.head.in_channels == pruned.fc2.out_channels
    assert diff < 1e-5
    check_cut(model, pruned, plan.cuts, x)


def test_a_wrong_mapping_is_refused_by_the_proof():
    """Cutting contiguous channels (as if the view were (C/k, k)) instead of channel j of every path."""
    model, x = Radix().eval(), torch.randn(2, 3, 8, 8)
    _, plan, _, _ = random_cut(model, x)
    conv = next(c for c in plan.cuts if c.name == "conv" and c.role == "out")
    n = len(conv.keep)
    wrong = [dataclasses.replace(c, keep=tuple(range(n))) if c.name in ("conv", "fc2") and c.role == "out" else c
             for c in plan.cuts]
    assert wrong != plan.cuts
    pruned = apply_cuts(copy.deepcopy(model), wrong)
    with pytest.raises(PruneError, match="differs from the original"):
        check_cut(model, pruned, wrong, x)


def test_interleaved_view_is_protected():
    """(C) -> (C/k, k): channel c goes to (c // k, c % k), not the path layout: protected."""
    class Interleaved(Radix):
        def forward(self, x):
            x = F.relu(self.conv(F.relu(self.stem(x))))
            b, rc, h, w = x.shape
            return self.head(x.view(b, -1, self.k, h, w).sum(dim=2))

    model, x = Interleaved().eval(), torch.randn(2, 3, 8, 8)
    conv = _group(groups_of(model, x), "conv:out")
    assert conv.prunable == 0 and any("not a flatten" in p.why for p in conv.protected)


def test_constant_sizes_stay_protected():
    """A per-path width written in the code cannot follow a cut."""
    model, x = Radix(width_in_code=True).eval(), torch.randn(2, 3, 8, 8)
    conv = _group(groups_of(model, x), "conv:out")
    assert conv.prunable == 0 and any("not a flatten" in p.why for p in conv.protected)


def test_path_count_computed_at_run_time_is_protected():
    """(B, C // 3, 3 ...) with the leading count from the shape: it would change with a cut."""
    class RunTimePaths(Radix):
        def forward(self, x):
            x = F.relu(self.conv(F.relu(self.stem(x))))
            b, rc, h, w = x.shape
            return self.head(x.reshape(b, rc // self.c, self.c, h, w).sum(dim=1))

    model, x = RunTimePaths().eval(), torch.randn(2, 3, 8, 8)
    conv = _group(groups_of(model, x), "conv:out")
    assert conv.prunable == 0


class RadixConv(Radix):
    """ResNeSt's SplitAttn: the paths come from one conv with ``groups=radix``, so removing whole
    groups would remove a path; the groups stay and lose the same channels each instead."""

    def __init__(self):
        super().__init__(k=2, c=6)
        self.conv = nn.Conv2d(8, 12, 3, padding=1, groups=2)


def test_radix_grouped_conv_keeps_its_groups_and_narrows_them():
    model, x = RadixConv().eval(), torch.randn(2, 3, 8, 8)
    groups = groups_of(model, x)
    assert not _group(groups, "conv:out").protected and _group(groups, "conv:out").prunable > 0
    assert _group(groups, "stem:out").prunable == 0  # the stem policy, unchanged
    _, plan, pruned, diff = random_cut(model, x, prune_stem=True)
    assert pruned.conv.groups == 2 and pruned.conv.in_channels < 8 and pruned.conv.out_channels < 12
    assert plan.macs_after < plan.macs_before
    check_cut(model, pruned, plan.cuts, x)


def test_grouped_conv_cut_refuses_a_pattern_of_neither_kind():
    from compress.layers.conv import HANDLER

    conv = nn.Conv2d(4, 4, 1, groups=2)
    with pytest.raises(PruneError, match="neither whole groups"):
        HANDLER.cut("conv", conv, {"out": Cut("conv", "out", 0, 4, (0, 3))})  # channel 0 of group 0, 1 of group 1
    HANDLER.cut("conv", conv, {"out": Cut("conv", "out", 0, 4, (1, 3))})  # channel 1 of every group
    assert (conv.groups, conv.out_channels, tuple(conv.weight.shape)) == (2, 2, (2, 2, 1, 1))


def test_channel_shuffle_follows_a_cut():
    """torchvision's channel_shuffle: view (g, C/g), transpose, flatten back; channel j of every
    group goes together, so the shuffled order still matches after a cut."""
    class Shuffle(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.conv, self.head = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 12, 1), nn.Conv2d(12, 4, 1)

        def forward(self, x):
            x = F.relu(self.conv(F.relu(self.stem(x))))
            b, c, h, w = x.size()
            x = torch.transpose(x.view(b, 3, c // 3, h, w), 1, 2).contiguous().view(b, c, h, w)
            return self.head(x)

    model, x = Shuffle().eval(), torch.randn(2, 3, 8, 8)
    assert _group(groups_of(model, x), "conv:out").prunable > 0
    _, plan, pruned, _ = random_cut(model, x)
    assert pruned.conv.out_channels < 12 and pruned.conv.out_channels % 3 == 0
    check_cut(model, pruned, plan.cuts, x)


def test_latency_terms_time_the_narrowed_groups():
    from compress.export.layer_models import torch_layer
    from compress.prune.latency.terms import latency_terms

    model, x = RadixConv().eval(), torch.randn(2, 3, 8, 8)
    term = next(t for t in latency_terms(groups_of(model, x, prune_stem=True), 2) if t.layer == "conv")
    assert term.spec.keeps_groups and not term.spec.grouped and "keeps_groups" in term.spec.key()
    assert all(c % 2 == 0 for c in term.grid_in + term.grid_out) and len(term.points()) > len(term.grid_in)
    layer = torch_layer(term.spec, 4, 6)
    assert (layer.groups, layer.in_channels, layer.out_channels) == (2, 4, 6)
    plain = next(t for t in latency_terms(groups_of(model, x, prune_stem=True), 2) if t.layer == "fc1")
    assert "keeps_groups" not in plain.spec.key()  # tables measured before keep their keys
