"""Channel rules of indexing: ``x[...]`` (``operator.getitem``) and ``index_select``.

What an index does to the channel axis is a channel map, followed exactly where a cut cannot change
what the index reads, and protected where it could:

- a whole-axis slice keeps the channels (``x[:, :n]`` with ``n`` at least the width too);
- a strided slice with an open end, ``x[:, a::k]`` (ShuffleNetV2's split ``x[:, 0::2]`` / ``x[:, 1::2]``):
  each block of ``k`` consecutive channels (``k*j`` to ``k*j + k - 1``) is kept or removed together, so
  every residue mod ``k`` keeps its place after a cut and the slice reads the kept channels of the same
  blocks; whole blocks before its start (``a >= k``, fixed in code) and a trailing partial block are
  protected;
- a slice with a fixed end ``x[:, a:b:k]`` (``b`` below the width), or a constant index (a buffer,
  ``torch.tensor([...])``, ``torch.arange(...)``, given to ``x[:, idx]`` or ``index_select``): the
  channels up to its end (its largest index) are protected, so they never move, and those after it
  are free; the output carries the channels it reads;
- anything else on the channel axis (bounds or indices computed at run time, negative ones, counted
  from the end) loses the channels, as an unknown op does.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.fx as fx

from compress.layers.values import Dynamic, Value, arg, lose, norm_dim

FIXED_END = "slices the channel axis with fixed bounds: the channels up to its end keep their places"
FIXED_START = "a slice of the channel axis starting at a fixed channel: the channels before it keep their places"
PARTIAL_BLOCK = "the partial block at the end of a strided slice of the channel axis"
CONSTANT_INDEX = "indexed by constant channel indices: the channels up to the largest keep their places"
RUNTIME_INDEX = "indexed by a tensor or run-time value"

_CONSTANT_FACTORIES = (torch.tensor, torch.as_tensor, torch.arange, torch.LongTensor)


def getitem(an, node, rule, args, kwargs, module=None):
    obj, index = args[0], args[1]
    if isinstance(obj, (tuple, list)):
        return obj[index]
    if not isinstance(obj, Value):
        return Dynamic(node.name)
    raw = node.args[1]
    return _index_tensor(an, node, obj, index, raw)


def index_select(an, node, rule, args, kwargs, module=None):
    """``torch.index_select(x, dim, index)`` / ``x.index_select(dim, index)``."""
    x = args[0]
    dim = arg(args, kwargs, 1, "dim")
    raw = node.kwargs["index"] if "index" in node.kwargs else node.args[2] if len(node.args) > 2 else None
    if not isinstance(x, Value) or not x.tracked:
        return an.untracked(node, getattr(x, "why", "") or "no tracked input")
    if not isinstance(dim, int) or norm_dim(dim, len(x.shape)) != x.axis:
        return an.value(node, x.axis, x.ids)  # selects along another dim: the channels stay
    ids = _constant_map(an, node, x, _constant(an, raw))
    return lose(an, node, x, RUNTIME_INDEX) if ids is None else an.value(node, x.axis, ids)


def _index_tensor(an, node, x: Value, index, raw) -> Value:
    items = list(index) if isinstance(index, tuple) else [index]
    raws = list(raw) if isinstance(raw, (tuple, list)) and isinstance(index, tuple) else [raw]
    tensors = [k for k, i in enumerate(items) if isinstance(i, Value)]
    if any(not (i is None or i is Ellipsis or isinstance(i, (int, slice, Value))) for i in items) or len(tensors) > 1:
        return lose(an, node, x, RUNTIME_INDEX)
    consumed = sum(1 for i in items if i is not Ellipsis and i is not None)
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items[at:at + 1] = [slice(None)] * (len(x.shape) - consumed)
        raws[at:at + 1] = [slice(None)] * (len(x.shape) - consumed)
    in_dim = out_dim = 0
    new_axis, new_ids = None, x.ids
    for item, raw_item in zip(items, raws):
        if item is None:
            out_dim += 1
            continue
        if isinstance(item, Value) and in_dim != x.axis:
            return lose(an, node, x, RUNTIME_INDEX)  # a tensor index elsewhere moves dims about
        if in_dim == x.axis and x.tracked:
            if isinstance(item, int):
                return lose(an, node, x, "takes one channel of the channel axis")
            new_ids = _slice_map(an, node, x, item) if isinstance(item, slice) else \
                _constant_map(an, node, x, _constant(an, raw_item))
            if new_ids is None:
                return lose(an, node, x, FIXED_END if isinstance(item, slice) else RUNTIME_INDEX)
            new_axis = out_dim
        in_dim += 1
        out_dim += 0 if isinstance(item, int) else 1
    if not x.tracked:
        return an.untracked(node, x.why)
    if new_axis is None:  # channel axis not reached by the index: it keeps its place
        new_axis = x.axis - in_dim + out_dim
    return an.value(node, new_axis, new_ids)


def _slice_map(an, node, x: Value, item: slice) -> np.ndarray | None:
    """The ids a slice of the channel axis reads, after coupling/protecting what keeps it exact (None: lost)."""
    start, stop, step = item.start, item.stop, item.step
    if any(v is not None and not isinstance(v, int) for v in (start, stop, step)):
        return None  # bounds computed at run time
    start, step, c = start or 0, step or 1, len(x.ids)
    if start < 0 or step < 1 or (stop is not None and stop < 0):
        return None  # counted from the end: moves with a cut
    if stop is not None and stop < c:
        an.freeze(x.ids[:stop], node, FIXED_END)
        return x.ids[start:stop:step]
    head = start // step * step  # whole blocks before the start: fixed in code
    if head:
        an.freeze(x.ids[:head], node, FIXED_START)
    body = x.ids[head:]
    if step > 1:
        full = len(body) // step * step
        blocks = body[:full].reshape(-1, step)
        for r in range(1, step):  # each block of ``step`` channels is kept or removed together
            an.sets.union_arrays(blocks[:, 0], blocks[:, r])
        if full < len(body):
            an.freeze(body[full:], node, PARTIAL_BLOCK)
    return x.ids[start::step]


def _constant_map(an, node, x: Value, index: np.ndarray | None) -> np.ndarray | None:
    """A constant index: the channels up to the largest it reads are protected (they never move)."""
    c = len(x.ids)
    if index is None or index.ndim != 1:
        return None
    if index.dtype == np.bool_:
        if len(index) != c:
            return None
        index = np.flatnonzero(index)
    if not np.issubdtype(index.dtype, np.integer) or (len(index) and (index.min() < 0 or index.max() >= c)):
        return None
    if len(index):
        an.freeze(x.ids[:int(index.max()) + 1], node, CONSTANT_INDEX)
    return x.ids[index]


def _constant(an, raw) -> np.ndarray | None:
    """The values of an index fixed in the model: a buffer, or a tensor built from constants in forward."""
    if not isinstance(raw, fx.Node):
        return None
    if raw.op == "get_attr":
        obj = an.gm
        for part in raw.target.split("."):
            obj = getattr(obj, part, None)
        return obj.detach().cpu().numpy() if isinstance(obj, torch.Tensor) else None
    if raw.op == "call_function" and raw.target in _CONSTANT_FACTORIES:
        nested = fx.node.map_aggregate((raw.args, raw.kwargs), lambda a: a)
        found: list = []
        fx.node.map_arg(nested, lambda n: found.append(n))
        if found:
            return None  # built from run-time values
        args, kwargs = raw.args, dict(raw.kwargs)
        kwargs.pop("device", None)
        try:
            return raw.target(*args, **kwargs).cpu().numpy()
        except Exception:  # a constant it cannot rebuild: treated as run-time
            return None
    return None
