"""Channel rules of ops that combine or take apart tensors: broadcasting arithmetic (add, mul...),
cat, stack, chunk and split (indexing: ``indexing.py``). Matching channels are coupled; a layout the rule cannot
follow exactly is protected.
"""

from __future__ import annotations

import numpy as np

from compress.layers import registry
from compress.layers.splits import pieces
from compress.layers.values import Value, arg, lose, norm_dim


def broadcast(an, node, rule, args, kwargs, module=None):
    """add/sub/mul/div: operands are aligned from the right; matching channels are coupled."""
    out_shape = an.shape(node)
    nd = len(out_shape)
    tensors = [a for a in args[:2] if isinstance(a, Value)]
    axis, ids = None, None
    for v in tensors:
        if not v.tracked or v.shape[v.axis] == 1 and out_shape[nd - len(v.shape) + v.axis] != 1:
            continue  # untracked, or a single channel broadcast over all of them
        pos = nd - len(v.shape) + v.axis
        if axis is None:
            axis, ids = pos, v.ids
        elif pos == axis and len(v.ids) == len(ids):
            an.sets.union_arrays(ids, v.ids)
        else:
            an.freeze(ids, node, "operands carry channels on different axes")
            an.freeze(v.ids, node, "operands carry channels on different axes")
    if axis is None:
        why = next((v.why for v in tensors if v.why), "no tracked operand")
        return an.untracked(node, why)
    for v in tensors:
        if v.tracked:
            continue
        dim = axis - (nd - len(v.shape))
        if dim < 0 or v.shape[dim] == 1:
            continue  # broadcast along the channel axis: no per-channel content
        if v.param is not None:
            couple_param(an, node, v, dim, ids)
        else:
            an.freeze(ids, node, f"combined with a tensor of fixed channel count ({v.why or 'untracked'})")
    return an.value(node, axis, ids)


def couple_param(an, node, v: Value, dim: int, ids) -> None:
    """A stored parameter combined with channels on its ``dim`` (of the broadcast shape): its
    own dim becomes a slot of those channels; a dim it only has by broadcasting carries none."""
    own = dim - v.param_lead
    shape = an.param_shape(v.param)
    if own < 0 or shape[own] == 1:
        return
    if shape[own] != len(ids):
        an.freeze(ids, node, f"combined with parameter {v.param} of another width")
        return
    an.sets.union_arrays(an.param_slot(v.param, own, shape[own]), ids)


def cat(an, node, rule, args, kwargs, module=None):
    parts = list(arg(args, kwargs, 0, "tensors"))
    nd = len(an.shape(node))
    dim = norm_dim(arg(args, kwargs, 1, "dim", 0), nd)
    tracked = [p for p in parts if isinstance(p, Value) and p.tracked]
    if tracked and all(isinstance(p, Value) and (p.tracked or p.param is not None) for p in parts) \
            and len({p.axis for p in tracked}) == 1 and tracked[0].axis != dim:
        for p in parts:  # e.g. a class token (a parameter) joined to the patch tokens
            if not p.tracked:
                couple_param(an, node, p, tracked[0].axis, tracked[0].ids)
        parts = [p if p.tracked else Value(p.shape, tracked[0].axis, tracked[0].ids) for p in parts]
    if not all(isinstance(p, Value) and p.tracked for p in parts):
        for p in parts:
            if isinstance(p, Value):
                lose(an, node, p, "concatenated with an untracked tensor")
        return an.untracked(node, "concatenation of untracked tensors")
    axes = {p.axis for p in parts}
    if axes == {dim}:
        return an.value(node, dim, np.concatenate([p.ids for p in parts]))
    if len(axes) == 1 and len({len(p.ids) for p in parts}) == 1:  # concat along another dim
        for p in parts[1:]:
            an.sets.union_arrays(parts[0].ids, p.ids)
        return an.value(node, parts[0].axis, parts[0].ids)
    for p in parts:
        lose(an, node, p, "concatenation mixes channel layouts")
    return an.untracked(node, "concatenation mixes channel layouts")


def stack(an, node, rule, args, kwargs, module=None):
    """torch.stack: a new dim at ``dim``; tensors whose channels share an axis are coupled."""
    parts = list(arg(args, kwargs, 0, "tensors"))
    dim = norm_dim(arg(args, kwargs, 1, "dim", 0), len(an.shape(node)))
    tracked = [p for p in parts if isinstance(p, Value) and p.tracked]
    if len(tracked) == len(parts) and len({p.axis for p in parts}) == 1 and len({len(p.ids) for p in parts}) == 1:
        for p in parts[1:]:
            an.sets.union_arrays(parts[0].ids, p.ids)
        axis = parts[0].axis
        return an.value(node, axis + (1 if dim <= axis else 0), parts[0].ids)
    for p in parts:
        if isinstance(p, Value):
            lose(an, node, p, "stacked with tensors of another channel layout")
    return an.untracked(node, "stack of untracked tensors")


def chunk(an, node, rule, args, kwargs, module=None):
    x = args[0]
    n = arg(args, kwargs, 1, "chunks")
    dim = norm_dim(arg(args, kwargs, 2, "dim", 0), len(x.shape))
    outs = an.shapes(node)
    if not x.tracked:
        return tuple(an.untracked_shape(s, x.why) for s in outs)
    if dim != x.axis:
        return tuple(Value(tuple(s), x.axis, x.ids) for s in outs)
    c = len(x.ids)
    if not isinstance(n, int) or c % n:
        an.freeze(x.ids, node, "uneven chunks of the channel axis")
        return tuple(an.untracked_shape(s, "uneven chunk") for s in outs)
    size = c // n  # channel j of every chunk goes together, so chunks stay equal
    an.sets.union_strided(x.ids, size)
    return tuple(Value(tuple(s), x.axis, x.ids[k * size:(k + 1) * size]) for k, s in enumerate(outs))


def split(an, node, rule, args, kwargs, module=None):
    x = args[0]
    dim = norm_dim(arg(args, kwargs, 2, "dim", 0), len(x.shape))
    outs = an.shapes(node)
    if x.tracked and dim != x.axis:
        return tuple(Value(tuple(s), x.axis, x.ids) for s in outs)
    if x.tracked:
        declared = _declared_split(an, node, x, arg(args, kwargs, 1, "split_size_or_sections", kwargs.get("split_size")),
                                   outs)
        if declared is not None:
            return declared
        # split sizes are constants in the code: they cannot follow a cut
        an.freeze(x.ids, node, "split of the channel axis into fixed sizes")
    return tuple(an.untracked_shape(s, "split of the channel axis") for s in outs)


def _declared_split(an, node, x: Value, sizes, outs) -> tuple | None:
    """A split inside a module whose handler declares it (``LayerHandler.split``): the sizes
    traced are the ones its attributes give, and its cut rewrites them (role "split"). Pieces of
    an int size stay equal (channel j of every piece goes together, like ``chunk``)."""
    scope = node.meta.get("scope") or ""
    owner = an.traced.module(scope) if scope else None
    handler = registry.rule_for(owner) if owner is not None else None
    if handler is None or handler.split is None:
        return None
    declared = handler.split(owner)
    if declared is None or (list(sizes) if isinstance(sizes, (list, tuple)) else sizes) != declared:
        return None
    c = len(x.ids)
    widths = pieces(declared, c)
    if widths is None or len(widths) != len(outs) or any(s[x.axis] != w for s, w in zip(outs, widths)):
        return None
    if isinstance(declared, int):
        if c % declared:
            return None
        an.sets.union_strided(x.ids, declared)
    an.sets.union_arrays(an.slot(scope, "split", c, owner), x.ids)
    starts = np.cumsum([0] + widths)
    return tuple(Value(tuple(s), x.axis, x.ids[starts[k]:starts[k + 1]]) for k, s in enumerate(outs))
