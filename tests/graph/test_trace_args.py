"""Tracing a forward with optional arguments, and a traced model that fails when run.

The tool only ever calls ``model(x)``, so a forward argument whose default is a constant (``mask=None``) is
traced as that constant: ``if mask is not None`` takes the branch the call takes (timm Hiera failed with
"'NoneType' object has no attribute 'view'" when fx took the proxy for a given mask). A traced graph that
fails when run is one error line, without the traceback torch.fx's ShapeProp prints before raising.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from compress.errors import GraphError
from compress.graph.trace import trace
from tests.graph.helpers import random_cut


class Masked(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.conv = nn.Conv2d(16, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.head = nn.Conv2d(16, 8, 1)

    def forward(self, x, mask=None, scale: float = 1.0):
        y = torch.relu(self.bn(self.conv(self.stem(x)))) * scale
        if mask is not None:
            y = y * mask.view(mask.shape[0], 1, *mask.shape[1:])
        return self.head(y).mean((2, 3))


class FailsWhenRun(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return self.conv(x).view(x.shape[0], 999, -1)  # traces, but no input has 999 x k values per image


def test_constant_defaults_are_traced_as_the_call_passes_them():
    model, x = Masked().eval(), torch.randn(2, 3, 8, 8)
    traced = trace(model, x)
    assert not any(node.op == "call_method" and node.target == "view" for node in traced.gm.graph.nodes)
    _, plan, pruned, diff = random_cut(model, x)
    assert plan.channels_removed > 0 and diff < 1e-5
    with torch.no_grad():
        assert pruned(x).shape == model(x).shape


def test_a_graph_that_fails_when_run_is_one_line_without_a_traceback(capsys):
    with pytest.raises(GraphError) as err:
        trace(FailsWhenRun().eval(), torch.randn(1, 3, 8, 8))
    message = str(err.value)
    assert "RuntimeError: shape '[1, 999, -1]' is invalid" in message and "at the traced graph's %view" in message
    assert "\n" not in message
    assert "Traceback" not in capsys.readouterr().err
