"""One MAC count: the plan's figures are the model's measured total (matmuls outside layers
included), before and after the cut."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from compress.prune.profile import count_macs
from tests.graph.helpers import random_cut


class TokenMix(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(8, 32), nn.Linear(32, 8), nn.Linear(8, 3)

    def forward(self, x):  # (B, T, 8)
        x = x + self.fc2(F.relu(self.fc1(x)))
        mix = torch.softmax(x @ x.transpose(1, 2), dim=-1)  # not a layer: counted by the FLOP counter
        return self.head((mix @ x).mean(1))


def test_plan_macs_are_the_measured_total():
    torch.manual_seed(0)
    model, x = TokenMix().eval(), torch.randn(2, 6, 8)
    _, plan, pruned, diff = random_cut(model, x)
    assert plan.macs_before == count_macs(model, (6, 8))
    assert plan.macs_before > sum(m.in_features * m.out_features * 6 for m in (model.fc1, model.fc2))
    assert plan.macs_after == count_macs(pruned, (6, 8)) < plan.macs_before
