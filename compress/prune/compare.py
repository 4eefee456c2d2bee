"""Compare two models' outputs leaf by leaf, failing closed (the comparison behind the proof).

Outputs may be a tensor, or tuples, lists, namedtuples and dicts of them (nested), with ``None``,
numbers and strings as leaves. Anything else, and any difference in structure (types, lengths,
dict keys), raises :class:`OutputMismatch`: a comparison that cannot see a part of the output must
not report it as equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from compress.errors import PruneError

_SCALARS = (bool, int, float)


class OutputMismatch(PruneError):
    """Two outputs that cannot be compared element by element."""


@dataclass(frozen=True)
class LeafDiff:
    """One compared leaf: where it sits in the output, the max |diff| and the reference's max |value|."""

    where: str
    diff: float  # inf when the shapes differ
    scale: float


def compare(ref: Any, got: Any) -> list[LeafDiff]:
    """The difference of every leaf of ``got`` from ``ref`` (same structure required)."""
    return [_leaf(where, a, b) for where, a, b in _pairs(ref, got, "output")]


def max_abs_diff(ref: Any, got: Any) -> float:
    """The largest difference over all leaves (0.0 for outputs without tensors)."""
    return max((leaf.diff for leaf in compare(ref, got)), default=0.0)


def _leaf(where: str, a: torch.Tensor, b: torch.Tensor) -> LeafDiff:
    scale = float(a.abs().max()) if a.numel() else 0.0
    if a.shape != b.shape:
        return LeafDiff(where, float("inf"), scale)
    diff = float((a.float() - b.float()).abs().max()) if a.numel() else 0.0
    return LeafDiff(where, diff, scale)


def _pairs(ref: Any, got: Any, where: str) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    if isinstance(ref, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            raise _mismatch(where, f"a tensor in one model and a {type(got).__name__} in the other")
        yield where, ref.detach(), got.detach()
    elif ref is None or isinstance(ref, str):
        if type(got) is not type(ref) or got != ref:
            raise _mismatch(where, f"{ref!r} in one model and {got!r} in the other")
    elif isinstance(ref, _SCALARS):
        if type(got) is not type(ref):
            raise _mismatch(where, f"a {type(ref).__name__} in one model and a {type(got).__name__} in the other")
        yield where, torch.tensor(float(ref)), torch.tensor(float(got))
    elif isinstance(ref, Mapping):
        if type(got) is not type(ref) or list(ref) != list(got):
            raise _mismatch(where, f"a {type(ref).__name__} with keys {list(ref)} in one model and "
                                   f"{_describe(got)} in the other")
        for key in ref:
            yield from _pairs(ref[key], got[key], f"{where}[{key!r}]")
    elif isinstance(ref, (list, tuple)):  # namedtuples are tuples; their type must match too
        if type(got) is not type(ref) or len(got) != len(ref):
            raise _mismatch(where, f"a {type(ref).__name__} of {len(ref)} in one model and {_describe(got)} in the other")
        for i, (a, b) in enumerate(zip(ref, got)):
            yield from _pairs(a, b, f"{where}[{i}]")
    else:
        raise OutputMismatch(
            f"cannot compare the model's {where}: a {type(ref).__name__} is not a tensor, number, "
            "string, None, or a tuple/list/dict of them",
            "return tensors from forward (or wrap the model so it does); nothing was written",
        )


def _describe(x: Any) -> str:
    if isinstance(x, Mapping):
        return f"a {type(x).__name__} with keys {list(x)}"
    if isinstance(x, (list, tuple)):
        return f"a {type(x).__name__} of {len(x)}"
    return f"a {type(x).__name__}"


def _mismatch(where: str, what: str) -> OutputMismatch:
    return OutputMismatch(f"the model's {where} differs in structure: {what}",
                          "this is a bug in the dependency graph: please report it; nothing was written")
