"""Prove a cut: the pruned model must compute exactly what the original computes when the
removed channels are zeroed at their consumers (the layers that mix channels)."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from compress.compare import compare, max_abs_diff
from compress.errors import PruneError
from compress.graph.handlers import handler_for


def zeroed_reference(original: nn.Module, cuts: list[dict]) -> nn.Module:
    """A copy of ``original`` whose channel-mixing layers ignore the removed input channels
    (each layer's handler says how: ``LayerHandler.zero``)."""
    ref = copy.deepcopy(original).eval()
    with torch.no_grad():
        for cut in cuts:
            removed = sorted(set(range(cut["size"])) - set(cut["keep"]))
            if not removed:
                continue
            if cut["role"] == "param":  # a weight a functional conv/linear reads: zero its inputs
                if cut.get("consumes"):
                    owner, _, attr = cut["name"].rpartition(".")
                    idx = torch.as_tensor(removed, dtype=torch.long)
                    getattr(ref.get_submodule(owner) if owner else ref, attr).index_fill_(cut["dim"], idx, 0)
                continue
            m = ref.get_submodule(cut["name"])
            handler = handler_for(m)
            if handler is None or handler.zero is None:
                continue  # never reads one channel into another
            replacement = handler.zero(m, cut, removed)
            if replacement is not None:
                _replace(ref, cut["name"], replacement)
    return ref


def _replace(root: nn.Module, name: str, module: nn.Module) -> None:
    owner, _, attr = name.rpartition(".")
    setattr(root.get_submodule(owner) if owner else root, attr, module)


def max_difference(a: nn.Module, b: nn.Module, example: torch.Tensor) -> float:
    """The largest difference over every leaf of the two models' outputs (raises when they differ in structure)."""
    with torch.no_grad():
        out_a, out_b = a.eval()(example), b.eval()(example)
    return max_abs_diff(out_a, out_b)


def check_cut(original: nn.Module, pruned: nn.Module, cuts: list[dict], example: torch.Tensor,
              *, tolerance: float = 1e-4) -> float:
    """Raise PruneError unless ``pruned`` matches the zeroed original, each output leaf (a tensor,
    a dict entry, a tuple element) relative to its own scale; return the largest difference."""
    ref = zeroed_reference(original, cuts)
    with torch.no_grad():
        expected = ref.eval()(example)
        try:
            got = pruned.eval()(example)
        except Exception as err:
            raise PruneError(f"the pruned model fails to run: {type(err).__name__}: {err}",
                             "this is a bug in the dependency graph: please report it; nothing was written") from err
    leaves = compare(expected, got)  # raises OutputMismatch on anything it cannot compare
    for leaf in leaves:
        if not leaf.diff <= tolerance * max(1.0, leaf.scale):
            where = "" if leaf.where == "output" else f" at {leaf.where}"
            raise PruneError(
                f"the pruned model differs from the original with the removed channels zeroed{where} "
                f"(max diff {leaf.diff:.3g})",
                "this is a bug in the dependency graph: please report it; nothing was written",
            )
    return max((leaf.diff for leaf in leaves), default=0.0)
