"""nn.Embedding, the layer type added in one file (compress/layers/embedding.py): learned position
tokens joined to patch tokens are pruned with them, proved and reloaded; max_norm stays protected."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.graph.helpers import cut_prove_reload, groups_of


class TokenNet(nn.Module):
    """Patch tokens plus learned position embeddings (an nn.Embedding looked up by a buffer of indices)."""

    def __init__(self, max_norm: float | None = None):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.patch = nn.Conv2d(6, 8, 2, stride=2)  # 8x8 -> 16 tokens of 8 channels
        self.pos = nn.Embedding(16, 8, max_norm=max_norm)
        self.register_buffer("positions", torch.arange(16))
        self.mlp = nn.Sequential(nn.Linear(8, 12), nn.GELU(), nn.Linear(12, 8))
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        t = self.patch(F.relu(self.stem(x))).flatten(2).transpose(1, 2)
        t = t + self.pos(self.positions)
        t = t + self.mlp(t)
        return self.head(t.mean(1))


def test_embedding_channels_are_cut_with_the_tokens_proved_and_reloaded(tmp_path):
    torch.manual_seed(0)
    model, x = TokenNet(), torch.randn(2, 3, 8, 8)
    groups, plan, pruned = cut_prove_reload(model, x, f"{__name__}:TokenNet", {}, tmp_path)
    stream = next(g for g in groups.groups if "patch:out" in g.layers)
    assert "pos:out" in stream.layers and stream.prunable == 8 and not stream.protected
    assert pruned.pos.embedding_dim == pruned.pos.weight.shape[1] == pruned.patch.out_channels < 8
    assert pruned.pos.weight.shape[0] == 16  # the table keeps its rows (one per position)


def test_embedding_with_max_norm_is_protected():
    model, x = TokenNet(max_norm=1.0), torch.randn(2, 3, 8, 8)
    stream = next(g for g in groups_of(model, x).groups if "patch:out" in g.layers)
    assert stream.prunable == 0
    assert any(p.layer == "pos" and "Embedding with max_norm" in p.why for p in stream.protected)
