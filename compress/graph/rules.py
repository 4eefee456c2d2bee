"""Channel-mapping rules: what each kind of op does to channel ids.

A rule receives the analyzer (``an``), the fx node, its table entry and its resolved arguments
(``Value`` for tensors, ``Dynamic`` for run-time non-tensor values, plain Python otherwise) and
returns the output's ``Value``. Rules couple ids (union), create layer slots, or protect ids
(freeze) whenever the op's effect on channels is not exactly known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch.nn as nn

MIX_REASON = "{op} mixes values across the channel axis: removing one channel would change the others"


@dataclass
class Value:
    """What the graph knows about a tensor: its shape and which axis carries channel ids."""

    shape: tuple[int, ...]
    axis: int | None = None  # the channel-carrying axis (in the full shape, batch included)
    ids: np.ndarray | None = None  # one id per index along ``axis``
    why: str = ""  # when untracked: where the channel layout was lost
    param: str | None = None  # set for get_attr parameters/buffers (and their broadcasts)
    param_lead: int = 0  # leading dims a broadcast (expand) added in front of the parameter's own

    @property
    def tracked(self) -> bool:
        return self.axis is not None


@dataclass(frozen=True)
class Dynamic:
    """A non-tensor value only known at run time (e.g. ``x.size(1)``)."""

    node: str


# ---------------------------------------------------------------- helpers


def _first_value(args) -> Value | None:
    for a in args:
        if isinstance(a, Value):
            return a
    return None


def _arg(args, kwargs, index, name, default=None):
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _norm_dim(dim: int, ndim: int) -> int:
    return dim + ndim if dim < 0 else dim


def _lose(an, node, x: Value | None, why: str) -> Value:
    """Protect what ``x`` carries and return an untracked output."""
    if x is not None and x.tracked:
        an.freeze(x.ids, node, why)
    return an.untracked(node, why)


def _keep_layout(an, node, x: Value) -> Value:
    return an.value(node, x.axis, x.ids) if x.tracked else an.untracked(node, x.why)


# ---------------------------------------------------------------- layers


def conv(an, node, rule, args, kwargs, module):
    x = args[0]
    name = node.target
    in_ids = an.slot(name, "in", module.in_channels, module)
    out_ids = an.slot(name, "out", module.out_channels, module)
    if x.tracked and x.axis == 1 and len(x.ids) == module.in_channels:
        an.sets.union_arrays(in_ids, x.ids)
    else:
        an.freeze(in_ids, node, f"input channel layout unknown ({x.why or 'not on axis 1'})")
        _lose(an, node, x, "feeds a convolution along an unexpected axis")
    g = module.groups
    if g > 1:  # a group's inputs and outputs stand or fall together: whole groups are removed
        ipg, opg = module.in_channels // g, module.out_channels // g
        for k in range(g):
            an.sets.union_all(np.concatenate([in_ids[k * ipg:(k + 1) * ipg], out_ids[k * opg:(k + 1) * opg]]))
    return an.value(node, 1, out_ids)


def linear(an, node, rule, args, kwargs, module):
    x = args[0]
    name = node.target
    in_ids = an.slot(name, "in", module.in_features, module)
    out_ids = an.slot(name, "out", module.out_features, module)
    last = len(x.shape) - 1
    if x.tracked and x.axis == last and len(x.ids) == module.in_features:
        an.sets.union_arrays(in_ids, x.ids)
    else:
        an.freeze(in_ids, node, f"input feature layout unknown ({x.why or 'channels not on the last axis'})")
        _lose(an, node, x, "feeds a Linear on an axis other than its channels")
    return an.value(node, len(an.shape(node)) - 1, out_ids)


def _per_channel(an, node, x: Value, module, n: int) -> Value:
    """A layer with one parameter (or statistic) per channel on axis 1."""
    chan = an.slot(node.target, "chan", n, module)
    if x.tracked and x.axis == 1 and len(x.ids) == n:
        an.sets.union_arrays(chan, x.ids)
        return an.value(node, 1, x.ids)
    an.freeze(chan, node, f"input channel layout unknown ({x.why or 'not on axis 1'})")
    _lose(an, node, x, "per-channel layer on an unexpected axis")
    return an.value(node, 1, chan)


def batchnorm(an, node, rule, args, kwargs, module):
    return _per_channel(an, node, args[0], module, module.num_features)


def prelu(an, node, rule, args, kwargs, module):
    if module.num_parameters == 1:
        return _keep_layout(an, node, args[0])
    return _per_channel(an, node, args[0], module, module.num_parameters)


def groupnorm(an, node, rule, args, kwargs, module):
    out = _per_channel(an, node, args[0], module, module.num_channels)
    chan = an.slot(node.target, "chan", module.num_channels, module)
    g = module.num_groups
    per = module.num_channels // g
    for k in range(g):  # statistics are per group: only whole groups can go
        an.sets.union_all(chan[k * per:(k + 1) * per])
    if g == 1:
        an.freeze(chan, node, MIX_REASON.format(op="GroupNorm with one group"))
    return out


def layernorm(an, node, rule, args, kwargs, module):
    x = args[0]
    ndim = len(x.shape)
    normalized = range(ndim - len(module.normalized_shape), ndim)
    if x.tracked and x.axis not in normalized:  # normalises within each channel
        return _keep_layout(an, node, x)
    if x.tracked and len(module.normalized_shape) == 1:
        chan = an.slot(node.target, "chan", module.normalized_shape[0], module)
        an.sets.union_arrays(chan, x.ids)
        if an.layernorm_widths and x.axis == ndim - 1 and type(module).forward is nn.LayerNorm.forward:
            return an.value(node, x.axis, x.ids)  # opted in: sliced like a per-channel layer
        an.sets.union_all(chan)
        an.freeze(chan, node, MIX_REASON.format(op="LayerNorm"))
        return an.value(node, x.axis, x.ids)
    return _lose(an, node, x, MIX_REASON.format(op="LayerNorm"))


# ---------------------------------------------------------------- layout-preserving ops


def elementwise(an, node, rule, args, kwargs, module=None):
    x = _first_value(args)
    if x is None:
        return an.untracked(node, "no tensor input")
    if an.shape(node) != x.shape:
        return _lose(an, node, x, "changes the shape of its input")
    return _keep_layout(an, node, x)


def spatial(an, node, rule, args, kwargs, module=None):
    """Pooling, resizing, spatial padding: act on the dims after the channel axis (N, C, ...)."""
    x = args[0]
    out = an.shape(node)
    if not x.tracked:
        return an.untracked(node, x.why)
    if x.axis == 1 and len(out) == len(x.shape) and out[1] == x.shape[1]:
        return an.value(node, 1, x.ids)
    return _lose(an, node, x, "spatial op applied across the channel axis")


def softmax(an, node, rule, args, kwargs, module=None):
    x = args[0]
    dim = module.dim if module is not None else _arg(args, kwargs, 1, "dim")
    if module is not None and dim is None:
        dim = 1  # nn.Softmax2d
    if not x.tracked:
        return an.untracked(node, x.why)
    if dim is None or _norm_dim(dim, len(x.shape)) == x.axis:
        return _lose(an, node, x, MIX_REASON.format(op="softmax"))
    return _keep_layout(an, node, x)


def meta(an, node, rule, args, kwargs, module=None):
    return Dynamic(node.name)


# ---------------------------------------------------------------- combining ops


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
            _couple_param(an, node, v, dim, ids)
        else:
            an.freeze(ids, node, f"combined with a tensor of fixed channel count ({v.why or 'untracked'})")
    return an.value(node, axis, ids)


def _couple_param(an, node, v: Value, dim: int, ids) -> None:
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
    parts = list(_arg(args, kwargs, 0, "tensors"))
    nd = len(an.shape(node))
    dim = _norm_dim(_arg(args, kwargs, 1, "dim", 0), nd)
    tracked = [p for p in parts if isinstance(p, Value) and p.tracked]
    if tracked and all(isinstance(p, Value) and (p.tracked or p.param is not None) for p in parts) \
            and len({p.axis for p in tracked}) == 1 and tracked[0].axis != dim:
        for p in parts:  # e.g. a class token (a parameter) joined to the patch tokens
            if not p.tracked:
                _couple_param(an, node, p, tracked[0].axis, tracked[0].ids)
        parts = [p if p.tracked else Value(p.shape, tracked[0].axis, tracked[0].ids) for p in parts]
    if not all(isinstance(p, Value) and p.tracked for p in parts):
        for p in parts:
            if isinstance(p, Value):
                _lose(an, node, p, "concatenated with an untracked tensor")
        return an.untracked(node, "concatenation of untracked tensors")
    axes = {p.axis for p in parts}
    if axes == {dim}:
        return an.value(node, dim, np.concatenate([p.ids for p in parts]))
    if len(axes) == 1 and len({len(p.ids) for p in parts}) == 1:  # concat along another dim
        for p in parts[1:]:
            an.sets.union_arrays(parts[0].ids, p.ids)
        return an.value(node, parts[0].axis, parts[0].ids)
    for p in parts:
        _lose(an, node, p, "concatenation mixes channel layouts")
    return an.untracked(node, "concatenation mixes channel layouts")


def stack(an, node, rule, args, kwargs, module=None):
    """torch.stack: a new dim at ``dim``; tensors whose channels share an axis are coupled."""
    parts = list(_arg(args, kwargs, 0, "tensors"))
    dim = _norm_dim(_arg(args, kwargs, 1, "dim", 0), len(an.shape(node)))
    tracked = [p for p in parts if isinstance(p, Value) and p.tracked]
    if len(tracked) == len(parts) and len({p.axis for p in parts}) == 1 and len({len(p.ids) for p in parts}) == 1:
        for p in parts[1:]:
            an.sets.union_arrays(parts[0].ids, p.ids)
        axis = parts[0].axis
        return an.value(node, axis + (1 if dim <= axis else 0), parts[0].ids)
    for p in parts:
        if isinstance(p, Value):
            _lose(an, node, p, "stacked with tensors of another channel layout")
    return an.untracked(node, "stack of untracked tensors")


def chunk(an, node, rule, args, kwargs, module=None):
    x = args[0]
    n = _arg(args, kwargs, 1, "chunks")
    dim = _norm_dim(_arg(args, kwargs, 2, "dim", 0), len(x.shape))
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
    for j in range(size):
        an.sets.union_all(x.ids[j::size])
    return tuple(Value(tuple(s), x.axis, x.ids[k * size:(k + 1) * size]) for k, s in enumerate(outs))


def split(an, node, rule, args, kwargs, module=None):
    x = args[0]
    dim = _norm_dim(_arg(args, kwargs, 2, "dim", 0), len(x.shape))
    outs = an.shapes(node)
    if x.tracked and dim != x.axis:
        return tuple(Value(tuple(s), x.axis, x.ids) for s in outs)
    if x.tracked:  # split sizes are constants in the code: they cannot follow a cut
        an.freeze(x.ids, node, "split of the channel axis into fixed sizes")
    return tuple(an.untracked_shape(s, "split of the channel axis") for s in outs)


def getitem(an, node, rule, args, kwargs, module=None):
    obj, index = args[0], args[1]
    if isinstance(obj, (tuple, list)):
        return obj[index]
    if not isinstance(obj, Value):
        return Dynamic(node.name)
    return _index_tensor(an, node, obj, index)


def _index_tensor(an, node, x: Value, index) -> Value:
    items = list(index) if isinstance(index, tuple) else [index]
    if any(not (i is None or i is Ellipsis or isinstance(i, (int, slice))) for i in items):
        return _lose(an, node, x, "indexed by a tensor or run-time value")
    consumed = sum(1 for i in items if i is not Ellipsis and i is not None)
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items[at:at + 1] = [slice(None)] * (len(x.shape) - consumed)
    in_dim = out_dim = 0
    new_axis = None
    for item in items:
        if item is None:
            out_dim += 1
            continue
        if in_dim == x.axis:
            if not _whole(item, x.shape[x.axis]):
                return _lose(an, node, x, "slices the channel axis with fixed bounds")
            new_axis = out_dim
        in_dim += 1
        out_dim += 0 if isinstance(item, int) else 1
    if not x.tracked:
        return an.untracked(node, x.why)
    if new_axis is None:  # channel axis not reached by the index: it keeps its place
        new_axis = x.axis - in_dim + out_dim
    return an.value(node, new_axis, x.ids)


def _whole(item, size: int) -> bool:
    """A slice taking the whole axis, and still the whole axis once it is narrower (``x[:, :n]``
    with ``n`` at least the width: GhostNet's ``out[:, :self.out_chs]``)."""
    return isinstance(item, slice) and item.start in (None, 0) and item.step in (None, 1) and \
        (item.stop is None or isinstance(item.stop, int) and item.stop >= size)


# ---------------------------------------------------------------- axis bookkeeping


def permute(an, node, rule, args, kwargs, module=None):
    x = args[0]
    dims = args[1:] if len(args) > 2 or isinstance(_arg(args, kwargs, 1, "dims"), int) else _arg(args, kwargs, 1, "dims")
    dims = [_norm_dim(d, len(x.shape)) for d in dims]
    if not x.tracked:
        return an.untracked(node, x.why)
    return an.value(node, dims.index(x.axis), x.ids)


def transpose(an, node, rule, args, kwargs, module=None):
    x = args[0]
    dims = (_arg(args, kwargs, 1, "dim0", kwargs.get("axis0")), _arg(args, kwargs, 2, "dim1", kwargs.get("axis1")))
    d0, d1 = (_norm_dim(d, len(x.shape)) for d in dims)  # swapaxes names them axis0/axis1
    if not x.tracked:
        return an.untracked(node, x.why)
    axis = d1 if x.axis == d0 else d0 if x.axis == d1 else x.axis
    return an.value(node, axis, x.ids)


def unsqueeze(an, node, rule, args, kwargs, module=None):
    x = args[0]
    dim = _norm_dim(_arg(args, kwargs, 1, "dim"), len(x.shape) + 1)
    if not x.tracked:
        return an.untracked(node, x.why)
    return an.value(node, x.axis + (1 if dim <= x.axis else 0), x.ids)


def squeeze(an, node, rule, args, kwargs, module=None):
    x = args[0]
    if not x.tracked:
        return an.untracked(node, x.why)
    return _reshape_singletons(an, node, x, None) or _lose(an, node, x, "squeezes the channel axis")


def reduce(an, node, rule, args, kwargs, module=None):
    x = args[0]
    dims = _arg(args, kwargs, 1, "dim")
    keepdim = bool(_arg(args, kwargs, 2, "keepdim", False))
    if not x.tracked:
        return an.untracked(node, x.why)
    if dims is None:
        return _lose(an, node, x, MIX_REASON.format(op="a full reduction"))
    dims = [_norm_dim(d, len(x.shape)) for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
    if x.axis in dims:
        return _lose(an, node, x, MIX_REASON.format(op=f"a reduction over dim {x.axis}"))
    shift = 0 if keepdim else sum(1 for d in dims if d < x.axis)
    return an.value(node, x.axis - shift, x.ids)


def flatten(an, node, rule, args, kwargs, module=None):
    x = args[0]
    if module is not None:
        start, end = module.start_dim, module.end_dim
    else:
        start, end = _arg(args, kwargs, 1, "start_dim", 0), _arg(args, kwargs, 2, "end_dim", -1)
    nd = len(x.shape)
    start, end = _norm_dim(start, nd), _norm_dim(end, nd)
    if not x.tracked:
        return an.untracked(node, x.why)
    return _merge(an, node, x, start, end) or _lose(an, node, x, "flattens the batch axis")


def _merge(an, node, x: Value, start: int, end: int) -> Value | None:
    """Merge dims start..end (row-major). Channel c becomes the features it occupies."""
    if start == 0 and end > 0:
        return None
    if x.axis < start:
        return an.value(node, x.axis, x.ids)
    if x.axis > end:
        return an.value(node, x.axis - (end - start), x.ids)
    block = x.shape[start:end + 1]
    grid_shape = [1] * len(block)
    grid_shape[x.axis - start] = len(x.ids)
    ids = np.broadcast_to(x.ids.reshape(grid_shape), block).reshape(-1)
    return an.value(node, start, np.ascontiguousarray(ids))


def reshape(an, node, rule, args, kwargs, module=None):
    """view/reshape: supported where it is provably a flatten or only adds/removes size-1 dims,
    and the size it gives the channel axis is computed at run time (so it follows a cut)."""
    x = args[0]
    sizes = list(args[1:]) if len(args) > 2 or not isinstance(args[1], (tuple, list)) else list(args[1])
    if not x.tracked:
        return an.untracked(node, x.why)
    out = an.shape(node)
    res = _reshape_singletons(an, node, x, sizes)
    if res is not None:
        return res
    for start in range(1, len(x.shape)):
        for end in range(start + 1, len(x.shape)):
            merged = x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:]
            if merged == out and start <= x.axis <= end and _follows_cut(sizes, start):
                return _merge(an, node, x, start, end)
    return _lose(an, node, x, f"reshape {tuple(x.shape)} -> {tuple(out)} is not a flatten of the channel axis")


def _follows_cut(sizes, position: int) -> bool:
    if sizes is None:
        return True
    if len(sizes) <= position:
        return False
    s = sizes[position]
    return isinstance(s, Dynamic) or s == -1


def _reshape_singletons(an, node, x: Value, sizes) -> Value | None:
    """Output equals input up to inserted/removed size-1 dims: the channel axis moves."""
    out = an.shape(node)
    if [d for d in x.shape if d != 1] != [d for d in out if d != 1] or x.shape[x.axis] == 1:
        return None
    rank = sum(1 for d in x.shape[:x.axis] if d != 1)
    seen = -1
    for pos, d in enumerate(out):
        if d != 1:
            seen += 1
            if seen == rank:
                return an.value(node, pos, x.ids) if _follows_cut(sizes, pos) else None
    return None


def pad(an, node, rule, args, kwargs, module=None):
    """F.pad: padding on the channel axis adds channels of constants, fixed in code (protected);
    the padded tensor's original channels sit at a shifted range."""
    x = args[0]
    widths = _arg(args, kwargs, 1, "pad")
    mode = _arg(args, kwargs, 2, "mode", "constant")
    if not x.tracked:
        return an.untracked(node, x.why)
    if not all(isinstance(w, int) for w in widths):
        return _lose(an, node, x, "padding widths computed at run time")
    nd = len(x.shape)
    from_last = nd - 1 - x.axis
    if 2 * from_last + 1 >= len(widths) or (widths[2 * from_last] == 0 and widths[2 * from_last + 1] == 0):
        return _keep_layout(an, node, x)
    if mode != "constant":
        return _lose(an, node, x, f"{mode} padding of the channel axis")
    before, after = widths[2 * from_last], widths[2 * from_last + 1]
    if before < 0 or after < 0:
        return _lose(an, node, x, "negative padding crops the channel axis")
    pad_before, pad_after = an.sets.new(before), an.sets.new(after)
    why = "constant channels added by padding of fixed width in code"
    an.freeze(pad_before, node, why)
    an.freeze(pad_after, node, why)
    return an.value(node, x.axis, np.concatenate([pad_before, x.ids, pad_after]))


RULES = {
    name: fn
    for name, fn in globals().items()
    if callable(fn) and not name.startswith("_") and name not in {"Value", "Dynamic", "dataclass", "Any"}
}
