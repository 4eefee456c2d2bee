"""Modules that split their input's channel axis with sizes held in their attributes, declared
one type at a time: timm's ``MixedConv2d`` (``torch.split(x, self.splits, 1)``, one conv per
piece) and ``SelectiveKernel`` (``torch.split(x, self.in_channels // self.num_paths, 1)``).

The split sizes are Python constants in a traced graph, so a cut could only follow them if the
attribute they come from is rewritten. A handler here says which sizes the module's ``forward``
passes (``LayerHandler.split``) and rewrites the attributes from the kept channels of each piece
(``cut``, role "split"). The module is traced through (its convs are ordinary layers); the graph
follows its split only when the traced sizes equal the declared ones (``compress.graph.combine``),
anything else stays protected. Classes of optional packages are matched by qualified name, so
nothing here imports them.
"""

from __future__ import annotations

import torch.nn as nn

from compress.artifacts.cuts import Cut
from compress.errors import PruneError
from compress.layers.base import LayerHandler
from compress.layers.slicing import keep_index
from compress.layers.values import Value, lose


def pieces(sizes, total: int) -> list[int] | None:
    """The widths ``torch.split(x, sizes)`` gives an axis of ``total``: an int makes equal pieces
    (the last one shorter), a list is the widths; None when they do not add up."""
    if isinstance(sizes, int) and sizes > 0:
        return [min(sizes, total - start) for start in range(0, total, sizes)]
    if isinstance(sizes, (list, tuple)) and all(isinstance(s, int) and s >= 0 for s in sizes) and sum(sizes) == total:
        return list(sizes)
    return None


def kept_per_piece(name: str, sizes: list[int], cut: Cut) -> list[int]:
    """Channels each piece keeps; refuses a cut that empties a piece (its conv would have no input)."""
    keep = keep_index(cut, sum(sizes), name).tolist()
    kept, start = [], 0
    for size in sizes:
        kept.append(sum(1 for k in keep if start <= k < start + size))
        start += size
    if any(k == 0 for k in kept):
        raise PruneError(f"the cut empties a piece of the split in {name!r} (kept {kept} of {sizes})",
                         "this is a bug in the plan's width floors: please report it")
    return kept


def _opaque(an, node, args, kwargs, module):
    """Only reached when the tracer had to keep the module as one node: nothing is known."""
    for a in args:
        lose(an, node, a if isinstance(a, Value) else None, f"{type(module).__name__} could not be traced through")
    return an.untracked(node, f"{type(module).__name__} could not be traced through")


def _cut_mixed(name: str, module: nn.Module, roles: dict) -> None:
    cut = roles.get("split")
    if cut is not None:
        module.splits = kept_per_piece(name, list(module.splits), cut)
        module.in_channels = sum(module.splits)


def _sk_split(module: nn.Module):
    return module.in_channels // module.num_paths if module.split_input else None


def _cut_selective(name: str, module: nn.Module, roles: dict) -> None:
    cut = roles.get("split")
    if cut is None:
        return
    kept = kept_per_piece(name, [module.in_channels // module.num_paths] * module.num_paths, cut)
    if len(set(kept)) != 1:
        raise PruneError(f"the cut of {name!r} leaves its {module.num_paths} paths unequal ({kept})",
                         "this is a bug in the dependency graph: please report it")
    module.in_channels = sum(kept)


NAMED = {  # "module.QualName" -> handler
    "timm.layers.mixed_conv2d.MixedConv2d": LayerHandler(rule=_opaque, cut=_cut_mixed, split=lambda m: list(m.splits)),
    "timm.layers.selective_kernel.SelectiveKernel": LayerHandler(rule=_opaque, cut=_cut_selective, split=_sk_split),
}
