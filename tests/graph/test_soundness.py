"""The key property: a pruned model computes exactly what the original computes with the removed
channels zeroed at their consumers, for every kind of channel group."""

from __future__ import annotations

import pytest
import torch

from tests.graph.helpers import groups_of, random_cut
from tests.toy_models import TOYS, build


@pytest.mark.parametrize("name", sorted(TOYS))
@pytest.mark.parametrize("seed", [0, 1])
def test_cut_matches_zeroed_original(name, seed):
    model, x = build(name, seed)
    with torch.no_grad():
        before = model(x)
    groups, plan, pruned, diff = random_cut(model, x, seed=seed)
    assert plan.channels_removed > 0, f"{name}: nothing was pruned"
    assert diff <= 1e-4 * max(1.0, float(before.abs().max())), f"{name}: max diff {diff}"
    assert pruned(x).shape == before.shape
    # the original model is untouched
    with torch.no_grad():
        assert torch.equal(model(x), before)


def test_empty_plan_changes_nothing():
    model, x = build("residual")
    groups, plan, pruned, diff = random_cut(model, x, ratio=0.0)
    assert plan.cuts == [] and diff == 0.0


def test_pruned_models_are_really_smaller():
    model, x = build("chain")
    _, plan, pruned, _ = random_cut(model, x)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    assert plan.macs_after < plan.macs_before
    conv = pruned.a[0]
    assert conv.out_channels == conv.weight.shape[0] == pruned.a[1].num_features == pruned.b[0].in_channels


def _reasons(groups):
    return [p for g in groups.protected_groups() for p in g.protected]


def test_unknown_op_is_protected_and_reported():
    model, x = build("unknown_op")
    groups = groups_of(model, x)
    reasons = _reasons(groups)
    assert any(p.op == "roll" and "unknown op" in p.why for p in reasons)
    a_out = next(g for g in groups.groups if "a.0:out" in g.layers)
    assert a_out.prunable == 0  # flows through roll: frozen
    assert any(g.prunable > 0 for g in groups.groups)  # the rest stays prunable


def test_pad_zone_channels_are_protected_and_shifted_range_coupled():
    model, x = build("pad_shortcut")
    groups = groups_of(model, x, prune_stem=True)
    stream = next(g for g in groups.groups if "c2:out" in g.layers)
    assert "stem.0:out" in stream.layers  # the padded shortcut couples the stem to the stage
    assert any("padding" in p.why for p in stream.protected)
    assert stream.prunable == 4  # 8 wide, 2+2 pad channels fixed


def test_grouped_conv_loses_whole_groups():
    model, x = build("grouped")
    _, plan, pruned, diff = random_cut(model, x, ratio=0.6, seed=3)
    g = pruned.g[0]
    assert g.in_channels % 4 == 0 and g.groups == g.in_channels // 4 and diff < 1e-4


def test_layernorm_over_channels_is_protected_but_hidden_width_prunable():
    model, x = build("channels_last")
    groups = groups_of(model, x)
    stream = next(g for g in groups.groups if "norm:chan" in g.layers)
    assert stream.prunable == 0 and any("LayerNorm" in p.why for p in stream.protected)
    hidden = next(g for g in groups.groups if "fc1:out" in g.layers)
    assert hidden.prunable == 16


def test_stem_is_protected_by_default_and_keep_patterns_work():
    model, x = build("chain")
    groups = groups_of(model, x)
    stem = next(g for g in groups.groups if "a.0:out" in g.layers)
    assert stem.prunable == 0 and any("stem" in p.why for p in stem.protected)
    groups = groups_of(model, x, keep=("b.*",), prune_stem=True)
    kept = next(g for g in groups.groups if "b.0:out" in g.layers)
    assert kept.prunable == 0 and any("--keep" in p.why for p in kept.protected)
    # a kept layer keeps its input channels too, so what feeds it is kept as well
    assert next(g for g in groups.groups if "a.0:out" in g.layers).prunable == 0
    groups = groups_of(model, x, prune_stem=True)
    assert next(g for g in groups.groups if "a.0:out" in g.layers).prunable == 8


def test_output_and_input_channels_never_prunable():
    model, x = build("chain")
    groups = groups_of(model, x, prune_stem=True)
    head = next(g for g in groups.groups if "fc:out" in g.layers)
    assert head.prunable == 0
    inp = next(g for g in groups.groups if "a.0:in" in g.layers)
    assert inp.prunable == 0
