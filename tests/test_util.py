"""compress.util: the bottom helpers every layer (export and calibrate included) shares."""

from __future__ import annotations

import torch
import torch.nn as nn

from compress.util.modules import device_of, eval_mode
from compress.util.text import one_line


def test_eval_mode_restores_each_submodule_even_on_error():
    model = nn.Sequential(nn.BatchNorm1d(3), nn.Dropout(), nn.Linear(3, 2)).train()
    model[1].eval()  # mixed modes must come back as they were, not all-train
    before = [m.training for m in model.modules()]
    try:
        with eval_mode(model) as m:
            assert m is model and not any(x.training for x in model.modules())
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert [m.training for m in model.modules()] == before


def test_eval_mode_leaves_a_module_that_refuses_eval_as_it_is():
    class Exported(nn.Module):  # like torch.export's .module(): train()/eval() raise
        def train(self, mode=True):
            raise NotImplementedError

    model = Exported()
    with eval_mode(model):
        assert model.training
    assert model.training


def test_device_of_and_one_line():
    assert device_of(nn.Linear(2, 2)) == torch.device("cpu") == device_of(nn.ReLU())
    err = ValueError("first line\n  second\x1b[31m red\x1b[0m")
    assert one_line(err) == "first line second red"
    assert one_line(err, typed=True) == "ValueError: first line second red"
    assert one_line(ValueError("x" * 50), 10) == "xxxxxxx..."
    assert one_line(KeyError(), typed=True) == "KeyError"
