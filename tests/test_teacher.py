"""The distillation teacher with its BatchNorms folded: same outputs, original untouched, safe fallbacks."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from compress.recover.teacher import folded_teacher
from tests.toy_models import TOYS, build


def _bns(model: nn.Module) -> int:
    return sum(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in model.modules())


@pytest.mark.parametrize("name", sorted(TOYS))
def test_folded_teacher_computes_what_the_teacher_computes(name):
    model, x = build(name)
    model.eval()
    before = copy.deepcopy(model.state_dict())
    grads = [p.requires_grad for p in model.parameters()]
    runner, why = folded_teacher(model, x)
    # every toy folds, so the comparison below is between two different modules, never the model and itself
    assert why is None and runner is not model, why
    assert _bns(runner) == 0 and not any(p.requires_grad for p in runner.parameters())
    with torch.no_grad():
        torch.testing.assert_close(runner(x), model(x), rtol=1e-4, atol=1e-5)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the teacher is not changed
    assert [p.requires_grad for p in model.parameters()] == grads


def test_a_folded_copy_that_computes_something_else_is_not_used(monkeypatch):
    import torch.fx.experimental.optimization as fx_opt

    real_fuse = fx_opt.fuse

    def wrong_fuse(model, inplace=False):
        folded = real_fuse(model, inplace=inplace)
        with torch.no_grad():
            next(folded.parameters()).add_(0.5)
        return folded

    monkeypatch.setattr(fx_opt, "fuse", wrong_fuse)
    model, x = build("chain")
    runner, why = folded_teacher(model.eval(), x)
    assert runner is model and why == "folded output differs"


def test_conv_bn_pairs_are_folded_away():
    model, x = build("chain")
    runner, why = folded_teacher(model.eval(), x)
    assert why is None and _bns(model) > 0 and _bns(runner) == 0


def test_train_mode_hooks_and_untraceable_teachers_run_as_they_are():
    model, x = build("chain")
    assert folded_teacher(model.train(), x) == (model, "teacher is in train mode")

    model.eval()
    calls = []
    handle = model.register_forward_hook(lambda m, i, o: calls.append(1))
    runner, why = folded_teacher(model, x)
    handle.remove()
    assert runner is model and "hooks" in why and not calls  # the hook is not even called by the check

    class Branchy(nn.Module):  # data-dependent control flow: FX cannot trace it
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.bn(self.conv(x))
            return y if y.sum() > 0 else -y

    branchy = Branchy().eval()
    runner, why = folded_teacher(branchy, x)
    assert runner is branchy and why.startswith("not traceable")
