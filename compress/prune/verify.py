"""Prove a cut: the pruned model must compute exactly what the original computes when the
removed channels are zeroed at their consumers (the layers that mix channels)."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from compress.artifacts.cuts import Cut
from compress.prune.compare import compare, max_abs_diff
from compress.errors import PruneError
from compress.graph.handlers import handler_for


def zeroed_reference(original: nn.Module, cuts: list[Cut]) -> nn.Module:
    """A copy of ``original`` whose channel-mixing layers ignore the removed input channels
    (each layer's handler says how: ``LayerHandler.zero``)."""
    ref = copy.deepcopy(original).eval()
    with torch.no_grad():
        for cut in cuts:
            removed = cut.removed
            if not removed:
                continue
            if cut.role == "param":  # a weight a functional conv/linear reads: zero its inputs
                if cut.consumes:
                    owner, _, attr = cut.name.rpartition(".")
                    idx = torch.as_tensor(removed, dtype=torch.long)
                    getattr(ref.get_submodule(owner) if owner else ref, attr).index_fill_(cut.dim, idx, 0)
                continue
            m = ref.get_submodule(cut.name)
            handler = handler_for(m)
            if handler is None or handler.zero is None:
                continue  # never reads one channel into another
            replacement = handler.zero(m, cut, removed)
            if replacement is not None:
                _replace(ref, cut.name, replacement)
    return ref


def _replace(root: nn.Module, name: str, module: nn.Module) -> None:
    owner, _, attr = name.rpartition(".")
    setattr(root.get_submodule(owner) if owner else root, attr, module)


def max_difference(a: nn.Module, b: nn.Module, example: torch.Tensor) -> float:
    """The largest difference over every leaf of the two models' outputs (raises when they differ in structure)."""
    with torch.no_grad():
        out_a, out_b = a.eval()(example), b.eval()(example)
    return max_abs_diff(out_a, out_b)


def check_cut(original: nn.Module, pruned: nn.Module, cuts: list[Cut], example: torch.Tensor,
              *, tolerance: float = 1e-4) -> float:
    """Raise PruneError unless ``pruned`` matches the zeroed original, each output leaf (a tensor,
    a dict entry, a tuple element) relative to its own scale; return the largest difference.

    A float32 mismatch is checked again in float64 on the CPU before it is called a bug: some
    networks (random weights, exploding activations) amplify float32 rounding so much that the
    unpruned model disagrees with itself, while a wrong channel mapping differs at any precision."""
    ref = zeroed_reference(original, cuts)
    leaves = _compare_cut(ref, pruned, example)
    if _worst(leaves, tolerance) is not None and example.is_floating_point() and example.dtype != torch.float64:
        try:
            precise = _compare_cut(copy.deepcopy(ref).cpu().double(), copy.deepcopy(pruned).cpu().double(),
                                   example.cpu().double())
        except Exception:  # noqa: BLE001 - a model that cannot run in float64 keeps its float32 verdict
            precise = None
        if precise is not None and _worst(precise, tolerance) is None:
            leaves = precise
    worst = _worst(leaves, tolerance)
    if worst is not None:
        where = "" if worst.where == "output" else f" at {worst.where}"
        raise PruneError(
            f"the pruned model differs from the original with the removed channels zeroed{where} "
            f"(max diff {worst.diff:.3g})",
            "this is a bug in the dependency graph: please report it; nothing was written",
        )
    return max((leaf.diff for leaf in leaves), default=0.0)


def _compare_cut(ref: nn.Module, pruned: nn.Module, example: torch.Tensor):
    with torch.no_grad():
        expected = ref.eval()(example)
        try:
            got = pruned.eval()(example)
        except Exception as err:
            raise PruneError(f"the pruned model fails to run: {type(err).__name__}: {err}",
                             "this is a bug in the dependency graph: please report it; nothing was written") from err
    return compare(expected, got)  # raises OutputMismatch on anything it cannot compare


def _worst(leaves, tolerance: float):
    """The first leaf outside the tolerance, or None."""
    return next((leaf for leaf in leaves if not leaf.diff <= tolerance * max(1.0, leaf.scale)), None)
