"""The proof in a network that amplifies float32 rounding (issue 28: timm efficientnetv2_rw_t with
random weights, whose own float32 output moves by 37% of its scale when its input moves by 1e-7):
an exact cut is confirmed in float64; a wrong cut is refused at any precision."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn as nn

from compress.errors import PruneError
from compress.prune.plan import plan_for_units
from compress.prune.surgery import apply_cuts
from compress.prune.verify import check_cut, max_difference, zeroed_reference
from tests.graph.helpers import groups_of


class Chaotic(nn.Module):
    """conv -> ReLU -> conv -> tanh, then the Chebyshev map h -> 2h^2 - 1 (doubles any error) 30 times."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 4, 3, padding=1)

    def forward(self, x):
        h = torch.tanh(self.conv2(torch.relu(self.conv1(x))))
        for _ in range(30):
            h = 2 * h * h - 1
        return h.mean((2, 3))




def test_exact_cut_in_an_ill_conditioned_model_is_confirmed_in_float64():
    torch.manual_seed(0)
    model, x = Chaotic().eval(), torch.randn(2, 3, 16, 16)
    groups = groups_of(model, x, prune_stem=True)  # conv1 is the stem
    plan = plan_for_units(groups, groups.prunable_units[:3])
    assert any(c.name == "conv1" and c.role == "out" for c in plan.cuts)
    pruned = apply_cuts(copy.deepcopy(model), plan.cuts)
    assert max_difference(zeroed_reference(model, plan.cuts), pruned, x) > 1e-2  # float32 alone cannot tell
    assert check_cut(model, pruned, plan.cuts, x) <= 1e-6  # float64 can: the cut is exact


def test_wrong_cut_is_refused_at_any_precision():
    torch.manual_seed(0)
    model, x = Chaotic().eval(), torch.randn(2, 3, 16, 16)
    groups = groups_of(model, x, prune_stem=True)  # conv1 is the stem
    plan = plan_for_units(groups, groups.prunable_units[:3])
    wrong = [dataclasses.replace(c, keep=tuple(range(len(c.keep)))) for c in plan.cuts]  # the last channels go instead
    assert wrong != plan.cuts
    pruned = apply_cuts(copy.deepcopy(model), wrong)
    with pytest.raises(PruneError, match="differs from the original"):
        check_cut(model, pruned, plan.cuts, x)
