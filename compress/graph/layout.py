"""Channel rules of ops that keep or move the channel axis: element-wise and spatial ops, softmax,
size queries, permutes, reductions, flatten/reshape and padding.

Each rule receives the analyser (``an``), the fx node, its table entry (``compress.graph.ops``)
and its resolved arguments, and returns the output's ``Value`` (see ``compress.layers.values``).
"""

from __future__ import annotations

import math

import numpy as np

from compress.layers.values import MIX_REASON, Dynamic, Value, arg, first_value, keep_layout, lose, norm_dim

def elementwise(an, node, rule, args, kwargs, module=None):
    x = first_value(args)
    if x is None:
        return an.untracked(node, "no tensor input")
    if an.shape(node) != x.shape:
        return lose(an, node, x, "changes the shape of its input")
    return keep_layout(an, node, x)


def spatial(an, node, rule, args, kwargs, module=None):
    """Pooling, resizing, spatial padding: act on the dims after the channel axis (N, C, ...)."""
    x = args[0]
    out = an.shape(node)
    if not x.tracked:
        return an.untracked(node, x.why)
    if x.axis == 1 and len(out) == len(x.shape) and out[1] == x.shape[1]:
        return an.value(node, 1, x.ids)
    return lose(an, node, x, "spatial op applied across the channel axis")


def pool_indices(an, node, rule, args, kwargs, module=None):
    """Max pooling that also returns where each maximum was (``return_indices=True``): a pair of the pooled
    values and their positions, both per channel, so both carry the input's channels. Without indices (a
    module built with ``return_indices=False``) it is a plain spatial op."""
    outs = an.shapes(node)
    if not outs:
        return spatial(an, node, rule, args, kwargs, module)
    x = args[0]
    if not x.tracked:
        return tuple(an.untracked_shape(s, x.why) for s in outs)
    if x.axis == 1 and all(len(s) == len(x.shape) and s[1] == x.shape[1] for s in outs):
        return tuple(Value(tuple(s), 1, x.ids) for s in outs)
    an.freeze(x.ids, node, "spatial op applied across the channel axis")
    return tuple(an.untracked_shape(s, "spatial op applied across the channel axis") for s in outs)


def unpool(an, node, rule, args, kwargs, module=None):
    """Max unpooling: channel j of the input is scattered to the positions in channel j of ``indices`` (from
    the matching max pooling), so the input's channels and the indices' are coupled, and the output keeps them."""
    x, indices = args[0], arg(args, kwargs, 1, "indices")
    out = an.shape(node)
    if not isinstance(indices, Value) or not (x.tracked and indices.tracked):
        why = x.why if not x.tracked else getattr(indices, "why", None) or "indices not traced"
        for v in (x, indices):
            if isinstance(v, Value) and v.tracked:
                an.freeze(v.ids, node, f"unpooled with untracked channels ({why})")
        return an.untracked(node, why)
    if x.axis != 1 or indices.axis != 1 or len(x.ids) != len(indices.ids) or len(out) != len(x.shape):
        an.freeze(x.ids, node, "unpooling indices that do not follow the input's channels")
        an.freeze(indices.ids, node, "unpooling indices that do not follow the input's channels")
        return an.untracked(node, "unpooling across the channel axis")
    an.sets.union_arrays(x.ids, indices.ids)
    return an.value(node, 1, x.ids)


def softmax(an, node, rule, args, kwargs, module=None):
    x = args[0]
    dim = module.dim if module is not None else arg(args, kwargs, 1, "dim")
    if module is not None and dim is None:
        dim = 1  # nn.Softmax2d
    if not x.tracked:
        return an.untracked(node, x.why)
    if dim is None or norm_dim(dim, len(x.shape)) == x.axis:
        return lose(an, node, x, MIX_REASON.format(op="softmax"))
    return keep_layout(an, node, x)


def meta(an, node, rule, args, kwargs, module=None):
    return Dynamic(node.name)


# ---------------------------------------------------------------- axis bookkeeping


def permute(an, node, rule, args, kwargs, module=None):
    x = args[0]
    dims = args[1:] if len(args) > 2 or isinstance(arg(args, kwargs, 1, "dims"), int) else arg(args, kwargs, 1, "dims")
    dims = [norm_dim(d, len(x.shape)) for d in dims]
    if not x.tracked:
        return an.untracked(node, x.why)
    return an.value(node, dims.index(x.axis), x.ids)


def transpose(an, node, rule, args, kwargs, module=None):
    x = args[0]
    dims = (arg(args, kwargs, 1, "dim0", kwargs.get("axis0")), arg(args, kwargs, 2, "dim1", kwargs.get("axis1")))
    d0, d1 = (norm_dim(d, len(x.shape)) for d in dims)  # swapaxes names them axis0/axis1
    if not x.tracked:
        return an.untracked(node, x.why)
    axis = d1 if x.axis == d0 else d0 if x.axis == d1 else x.axis
    return an.value(node, axis, x.ids)


def unsqueeze(an, node, rule, args, kwargs, module=None):
    x = args[0]
    dim = norm_dim(arg(args, kwargs, 1, "dim"), len(x.shape) + 1)
    if not x.tracked:
        return an.untracked(node, x.why)
    return an.value(node, x.axis + (1 if dim <= x.axis else 0), x.ids)


def squeeze(an, node, rule, args, kwargs, module=None):
    x = args[0]
    if not x.tracked:
        return an.untracked(node, x.why)
    return _reshape_singletons(an, node, x, None) or lose(an, node, x, "squeezes the channel axis")


def reduce(an, node, rule, args, kwargs, module=None):
    x = args[0]
    dims = arg(args, kwargs, 1, "dim")
    keepdim = bool(arg(args, kwargs, 2, "keepdim", False))
    if not x.tracked:
        return an.untracked(node, x.why)
    if dims is None:
        return lose(an, node, x, MIX_REASON.format(op="a full reduction"))
    dims = [norm_dim(d, len(x.shape)) for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
    if x.axis in dims:
        return lose(an, node, x, MIX_REASON.format(op=f"a reduction over dim {x.axis}"))
    shift = 0 if keepdim else sum(1 for d in dims if d < x.axis)
    return an.value(node, x.axis - shift, x.ids)


def flatten(an, node, rule, args, kwargs, module=None):
    x = args[0]
    if module is not None:
        start, end = module.start_dim, module.end_dim
    else:
        start, end = arg(args, kwargs, 1, "start_dim", 0), arg(args, kwargs, 2, "end_dim", -1)
    nd = len(x.shape)
    start, end = norm_dim(start, nd), norm_dim(end, nd)
    if not x.tracked:
        return an.untracked(node, x.why)
    return _merge(an, node, x, start, end) or lose(an, node, x, "flattens the batch axis")


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
    res = _split_paths(an, node, x, sizes, out)
    if res is not None:
        return res
    return lose(an, node, x, f"reshape {tuple(x.shape)} -> {tuple(out)} is not a flatten of the channel axis")


def _split_paths(an, node, x: Value, sizes, out) -> Value | None:
    """The channel axis C split into (k..., C/k): a fixed count of paths (radix, kernels)
    written as constants in the code, leading, then the per-path width computed at run time
    (``RC // self.radix``, ``-1``). Like ``chunk(k)``: channel j of every path goes together, so
    the paths stay equal after a cut; the output carries the per-path channels on the last of
    the new dims (every path holds the same ids, so flattening the paths back in any order,
    e.g. after a transpose of two path dims, tiles those ids again)."""
    a = x.axis
    if sizes is None or len(sizes) != len(out) or a == 0 or tuple(out[:a]) != tuple(x.shape[:a]):
        return None
    rest = [d for d in x.shape[a + 1:] if d != 1]
    for end in range(a + 1, len(out)):  # out[a:end] the paths, out[end] the per-path width
        paths, width = out[a:end], out[end]
        if math.prod(paths) * width != x.shape[a] or math.prod(paths) == 1 or width == 1 \
                or [d for d in out[end + 1:] if d != 1] != rest:
            continue
        if all(isinstance(s, int) and s > 0 for s in sizes[a:end]) and _follows_cut(sizes, end):
            break
        return None  # a path count computed at run time, or a width fixed in code: cannot follow a cut
    else:
        return None
    an.sets.union_strided(x.ids, width)
    return an.value(node, end, x.ids[:width])


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
    widths = arg(args, kwargs, 1, "pad")
    mode = arg(args, kwargs, 2, "mode", "constant")
    if not x.tracked:
        return an.untracked(node, x.why)
    if not all(isinstance(w, int) for w in widths):
        return lose(an, node, x, "padding widths computed at run time")
    nd = len(x.shape)
    from_last = nd - 1 - x.axis
    if 2 * from_last + 1 >= len(widths) or (widths[2 * from_last] == 0 and widths[2 * from_last + 1] == 0):
        return keep_layout(an, node, x)
    if mode != "constant":
        return lose(an, node, x, f"{mode} padding of the channel axis")
    before, after = widths[2 * from_last], widths[2 * from_last + 1]
    if before < 0 or after < 0:
        return lose(an, node, x, "negative padding crops the channel axis")
    pad_before, pad_after = an.sets.new(before), an.sets.new(after)
    why = "constant channels added by padding of fixed width in code"
    an.freeze(pad_before, node, why)
    an.freeze(pad_after, node, why)
    return an.value(node, x.axis, np.concatenate([pad_before, x.ids, pad_after]))
