"""Splits whose sizes a module holds in an attribute (``LayerHandler.split``): followed by the
graph, the attribute rewritten by the cut, proved, replayed and exported; anything else protected."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from compress.artifacts.cuts import Cut
from compress.errors import PruneError
from compress.layers import registry
from compress.layers.base import LayerHandler
from compress.layers.splits import kept_per_piece, pieces
from compress.prune.surgery import apply_cuts
from compress.prune.verify import check_cut

from tests.graph.helpers import groups_of, random_cut


class Mixed(nn.Module):
    """MixedConv2d in miniature: uneven pieces, one conv each, concatenated."""

    def __init__(self, c_in: int = 10, sizes=(4, 3, 3), c_out: int = 6):
        super().__init__()
        self.splits = list(sizes)
        self.convs = nn.ModuleList(nn.Conv2d(s, c_out // len(sizes), 2 * i + 1, padding=i) for i, s in enumerate(sizes))

    def forward(self, x):
        parts = torch.split(x, self.splits, 1)
        return torch.cat([conv(p) for conv, p in zip(self.convs, parts)], 1)


def _cut_mixed(name, module, roles):
    if "split" in roles:
        module.splits = kept_per_piece(name, module.splits, roles["split"])


class Declared(Mixed):
    pass


class Undeclared(Mixed):
    pass


registry.register_layer(Declared, LayerHandler(rule=lambda *a: None, cut=_cut_mixed, split=lambda m: list(m.splits)))


class Net(nn.Module):
    def __init__(self, mixed: type[Mixed]):
        super().__init__()
        self.stem, self.mix, self.head = nn.Conv2d(3, 10, 3, padding=1), mixed(), nn.Conv2d(6, 4, 1)

    def forward(self, x):
        return self.head(torch.relu(self.mix(torch.relu(self.stem(x)))))


def _stem(groups):
    return next(g for g in groups.groups if "stem:out" in g.layers)


def test_declared_split_is_cut_rewritten_proved_and_replayed():
    model, x = Net(Declared).eval(), torch.randn(2, 3, 8, 8)
    groups = groups_of(model, x, prune_stem=True)
    assert "mix:split" in _stem(groups).layers and not _stem(groups).protected
    _, plan, pruned, diff = random_cut(model, x, prune_stem=True)
    split = next(c for c in plan.cuts if c.role == "split")
    assert pruned.mix.splits == kept_per_piece("mix", [4, 3, 3], split) and sum(pruned.mix.splits) < 10
    assert [c.in_channels for c in pruned.mix.convs] == pruned.mix.splits
    assert diff < 1e-5
    check_cut(model, pruned, plan.cuts, x)
    replayed = apply_cuts(Net(Declared).eval(), plan.cuts)  # a fresh model, as a saved folder reloads
    replayed.load_state_dict(pruned.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(replayed(x), pruned(x))


def test_undeclared_split_stays_protected():
    groups = groups_of(Net(Undeclared).eval(), torch.randn(2, 3, 8, 8), prune_stem=True)
    stem = _stem(groups)
    assert stem.prunable == 0 and any("fixed sizes" in p.why for p in stem.protected)


def test_split_with_other_sizes_than_declared_stays_protected():
    class WrongDeclaration(Mixed):  # the handler names sizes the forward does not split by
        pass

    registry.register_layer(WrongDeclaration, LayerHandler(rule=lambda *a: None, cut=_cut_mixed,
                                                           split=lambda m: [3, 4, 3]))
    stem = _stem(groups_of(Net(WrongDeclaration).eval(), torch.randn(2, 3, 8, 8), prune_stem=True))
    assert stem.prunable == 0 and any("fixed sizes" in p.why for p in stem.protected)


def test_pieces_and_a_cut_emptying_a_piece():
    assert pieces(4, 12) == [4, 4, 4] and pieces(5, 12) == [5, 5, 2] and pieces([4, 3, 3], 10) == [4, 3, 3]
    assert pieces([4, 3], 10) is None
    assert kept_per_piece("m", [4, 3, 3], Cut("m", "split", 1, 10, (0, 4, 9))) == [1, 1, 1]
    with pytest.raises(PruneError, match="empties a piece"):
        kept_per_piece("m", [4, 3, 3], Cut("m", "split", 1, 10, (0, 1, 9)))


def test_timm_mixed_conv_and_selective_kernel():
    pytest.importorskip("timm", reason="timm's MixedConv2d and SelectiveKernel")
    from timm.layers.mixed_conv2d import MixedConv2d
    from timm.layers.selective_kernel import SelectiveKernel

    class TimmNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 12, 3, padding=1)
            self.mix, self.pw = MixedConv2d(12, 12, [3, 5, 7], depthwise=True), MixedConv2d(12, 10, [1, 1])
            self.sk, self.head = SelectiveKernel(10, 8, kernel_size=[3, 5]), nn.Conv2d(8, 4, 1)

        def forward(self, x):
            return self.head(self.sk(torch.relu(self.pw(self.mix(torch.relu(self.stem(x)))))))

    torch.manual_seed(0)
    model, x = TimmNet().eval(), torch.randn(2, 3, 16, 16)
    _, plan, pruned, diff = random_cut(model, x, prune_stem=True)
    assert {c.name for c in plan.cuts if c.role == "split"} == {"mix", "pw", "sk"}
    assert sum(pruned.mix.splits) < 12 and pruned.sk.in_channels < 10
    assert pruned.sk.in_channels == pruned.sk.num_paths * pruned.sk.paths[0].conv.in_channels  # paths stay equal
    check_cut(model, pruned, plan.cuts, x)
    replayed = apply_cuts(copy.deepcopy(model), plan.cuts)
    assert replayed.mix.splits == pruned.mix.splits and replayed.sk.in_channels == pruned.sk.in_channels
