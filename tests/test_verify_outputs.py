"""The proof fails closed: outputs it cannot compare, or that differ in structure, raise; every
leaf of a structured output is compared against its own scale."""

from __future__ import annotations

from collections import OrderedDict, namedtuple

import pytest
import torch
import torch.nn as nn

from compress.errors import PruneError
from compress.prune.compare import OutputMismatch, compare
from compress.prune.verify import check_cut, max_difference

Pair = namedtuple("Pair", "logits features")
X = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))


class Returns(nn.Module):
    """A model whose forward returns ``fn(x)`` (any structure)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.lin = nn.Linear(4, 4)  # a parameter, so the model has a device

    def forward(self, x):
        return self.fn(x)


def _proof(ref_fn, got_fn):
    return check_cut(Returns(ref_fn), Returns(got_fn), [], X)


def test_unknown_output_type_raises():
    with pytest.raises(OutputMismatch, match=r"output\[1\].*object"):
        _proof(lambda x: (x, object()), lambda x: (x, object()))


@pytest.mark.parametrize("ref_fn, got_fn", [
    (lambda x: (x, x), lambda x: (x,)),  # zip would drop the tail
    (lambda x: [x, x, x], lambda x: [x, x]),
    (lambda x: {"a": x, "b": x}, lambda x: {"a": x}),  # a missing key
    (lambda x: {"a": x}, lambda x: {"a": x, "b": x}),  # an extra key
    (lambda x: Pair(x, x), lambda x: (x, x)),  # namedtuple vs plain tuple
    (lambda x: x, lambda x: (x,)),
    (lambda x: (x, None), lambda x: (x, x)),
])
def test_structure_mismatch_raises(ref_fn, got_fn):
    with pytest.raises(OutputMismatch, match="differs in structure"):
        _proof(ref_fn, got_fn)


def test_dict_outputs_are_compared_and_scaled_per_key():
    # 0.01 off on a key of scale ~1 fails, even beside a key of scale ~1000 (a global scale would hide it)
    with pytest.raises(PruneError, match=r"output\['small'\]"):
        _proof(lambda x: {"big": 1000 * x, "small": x}, lambda x: {"big": 1000 * x, "small": x + 0.01})
    # the same relative error on the large key alone is within its own scale
    assert _proof(lambda x: {"big": 1000 * x, "small": x}, lambda x: {"big": 1000 * x + 1e-3, "small": x}) > 0


def test_nested_and_namedtuple_outputs_are_compared():
    ref = lambda x: Pair([x, {"deep": x}], (x,))  # noqa: E731
    assert _proof(ref, ref) == 0.0
    with pytest.raises(PruneError, match=r"output\[0\]\[1\]\['deep'\]"):
        _proof(ref, lambda x: Pair([x, {"deep": x + 1.0}], (x,)))


def test_identical_structured_outputs_pass_and_numbers_are_compared():
    assert _proof(lambda x: OrderedDict(a=x, n=3, s="tag", none=None), lambda x: OrderedDict(a=x, n=3, s="tag", none=None)) == 0.0
    with pytest.raises(PruneError, match=r"output\[1\]"):
        _proof(lambda x: (x, 1.0), lambda x: (x, 2.0))
    with pytest.raises(OutputMismatch):
        _proof(lambda x: (x, "a"), lambda x: (x, "b"))


def test_shape_mismatch_is_infinite_and_fails():
    assert max_difference(Returns(lambda x: x), Returns(lambda x: x[:, :2]), X) == float("inf")
    with pytest.raises(PruneError, match="max diff inf"):
        _proof(lambda x: x, lambda x: x[:, :2])


def test_pruned_model_that_crashes_is_reported_as_such():
    def boom(x):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(PruneError, match="fails to run: RuntimeError"):
        _proof(lambda x: x, boom)


def test_compare_names_every_leaf():
    leaves = compare({"a": (X, X)}, {"a": (X, X * 2)})
    assert [leaf.where for leaf in leaves] == ["output['a'][0]", "output['a'][1]"]
    assert leaves[0].diff == 0.0 and leaves[1].diff == pytest.approx(float(X.abs().max()))
