"""Channel rules for functional ops whose weights are module attributes.

timm's ``BatchNormAct2d`` calls ``F.batch_norm(x, self.running_mean, ...)``, ``Conv2dSame`` calls
``F.conv2d(x, self.weight, ...)``: in the traced graph their parameters arrive through
``get_attr`` nodes. A rule here finds the parameters' *owner*. When the owner is a layer the
surgery knows (a Conv/Linear/BatchNorm/GroupNorm/LayerNorm subclass reading its own
parameters), the op gets that layer's slots, so the surgery slices it and rewrites its width
attributes (``num_features``, ``out_channels``...) exactly as for the module itself, and the
proof zeroes its removed inputs. Otherwise each parameter gets a bare ``param`` slot; those on
a consumer's input dim are marked so the proof zeroes them. A parameter computed at run time
(weight standardisation...) cannot follow a cut: what flows through is protected.
"""

from __future__ import annotations

import numpy as np
import torch.nn as nn

from compress.graph.combine import broadcast
from compress.layers import batchnorm, conv
from compress.layers.values import MIX_REASON, Dynamic, Value, arg, lose

_CONVS = dict(enumerate(conv.CONVS, start=1))  # by dims
_STATS = ("running_mean", "running_var", "weight", "bias")


def _params(args, kwargs, spec: dict[str, int]) -> dict[str, Value | None]:
    return {name: arg(args, kwargs, i, name) for name, i in spec.items()}


def _owner(an, params: dict[str, Value | None], types, attrs: tuple[str, ...]):
    """``(name, module)`` when every given parameter is the same-named attribute of one module of
    ``types`` (so its own slicer and width attributes apply), else None."""
    names = {k: v.param for k, v in params.items() if v is not None}
    if not names or any(p is None for p in names.values()):
        return None
    owners = {p.rpartition(".")[0] for p in names.values()}
    if len(owners) != 1 or any(p.rpartition(".")[2] != k or k not in attrs for k, p in names.items()):
        return None
    owner = owners.pop()
    try:
        module = an.traced.module(owner) if owner else an.traced.root
    except AttributeError:
        return None
    return (owner, module) if isinstance(module, types) else None


def _computed(params: dict) -> bool:
    """A tensor argument that is not a stored parameter (computed at run time)."""
    return any(v is not None and (not isinstance(v, Value) or v.param is None) for v in params.values())


def _per_channel(an, node, x: Value, params: dict, owner, axis: int = 1) -> Value:
    """Couple each parameter's dim 0 with the channels on ``axis``; the output keeps them."""
    n = x.shape[axis] if len(x.shape) > axis else 0
    if _computed(params):
        return lose(an, node, x, "per-channel parameters computed at run time cannot follow a cut")
    if not (x.tracked and x.axis == axis and len(x.ids) == n):
        for v in params.values():
            if v is not None:
                an.freeze(an.param_slot(v.param, 0, v.shape[0]), node, "per-channel op on an unexpected axis")
        return lose(an, node, x, f"per-channel op on an unexpected axis ({x.why or 'channels elsewhere'})")
    if owner is not None:
        name, module = owner
        an.sets.union_arrays(an.slot(name, "chan", n, module), x.ids)
        an.note_probe(name, node)
    else:
        for v in params.values():
            if v is not None:
                an.sets.union_arrays(an.param_slot(v.param, 0, v.shape[0]), x.ids)
    return an.value(node, axis, x.ids)


def fn_batchnorm(an, node, rule, args, kwargs):
    """F.batch_norm / F.instance_norm: per-channel statistics and affine on axis 1."""
    params = _params(args, kwargs, {"running_mean": 1, "running_var": 2, "weight": 3, "bias": 4})
    types = batchnorm.INSTANCE_NORMS if rule.params.get("instance") else batchnorm.BATCH_NORMS
    return _per_channel(an, node, args[0], params, _owner(an, params, types, _STATS))


def fn_groupnorm(an, node, rule, args, kwargs):
    x = args[0]
    groups = arg(args, kwargs, 1, "num_groups")
    params = _params(args, kwargs, {"weight": 2, "bias": 3})
    owner = _owner(an, params, nn.GroupNorm, ("weight", "bias"))
    if owner is None or not isinstance(groups, int) or groups != owner[1].num_groups:
        return lose(an, node, x, "group_norm whose group count is fixed in code cannot follow a cut")
    out = _per_channel(an, node, x, params, owner)
    chan = an.slot(owner[0], "chan", owner[1].num_channels, owner[1])
    per = len(chan) // groups
    for k in range(groups):  # statistics are per group: only whole groups can go
        an.sets.union_all(chan[k * per:(k + 1) * per])
    if groups == 1:
        an.freeze(chan, node, MIX_REASON.format(op="group_norm with one group"))
    return out


def fn_layernorm(an, node, rule, args, kwargs):
    """Normalises over the trailing ``normalized_shape`` dims: per channel unless the channel
    axis is among them (then its statistics mix every channel: protected)."""
    x = args[0]
    shape = arg(args, kwargs, 1, "normalized_shape")
    params = _params(args, kwargs, {"weight": 2, "bias": 3})
    if not x.tracked:
        return an.untracked(node, x.why)
    if not isinstance(shape, (list, tuple)) or _computed(params):
        return lose(an, node, x, "layer_norm with run-time shape or parameters")
    if x.axis < len(x.shape) - len(shape):
        return an.value(node, x.axis, x.ids)
    owner = _owner(an, params, nn.LayerNorm, ("weight", "bias"))
    if an.layernorm_widths and owner is not None and len(shape) == 1 and x.axis == len(x.shape) - 1:
        an.sets.union_arrays(an.slot(owner[0], "chan", shape[0], owner[1]), x.ids)  # opted in (timm's LayerNorm)
        an.note_probe(owner[0], node)
        return an.value(node, x.axis, x.ids)
    an.freeze(x.ids, node, MIX_REASON.format(op="layer_norm"))
    for v in params.values():
        if v is not None and len(shape) == 1:
            an.sets.union_arrays(an.param_slot(v.param, 0, v.shape[0]), x.ids)
    return an.value(node, x.axis, x.ids)


def fn_linear(an, node, rule, args, kwargs):
    x = args[0]
    params = _params(args, kwargs, {"weight": 1, "bias": 2})
    w = params["weight"]
    last = len(x.shape) - 1
    if _computed(params) or w is None or len(w.shape) != 2:
        return lose(an, node, x, "linear with a weight computed at run time cannot follow a cut")
    owner = _owner(an, params, nn.Linear, ("weight", "bias"))
    in_ids, out_ids = _io_slots(an, owner, w, params["bias"], w.shape[1], w.shape[0])
    if x.tracked and x.axis == last and len(x.ids) == len(in_ids):
        an.sets.union_arrays(in_ids, x.ids)
    else:
        an.freeze(in_ids, node, f"input feature layout unknown ({x.why or 'channels not on the last axis'})")
        lose(an, node, x, "feeds a linear on an axis other than its channels")
    if owner is not None:
        an.record_call(node, owner[0], "linear", 1)
        an.note_probe(owner[0], node)
    return an.value(node, len(an.shape(node)) - 1, out_ids)


def fn_conv(an, node, rule, args, kwargs):
    """F.conv1d/2d/3d(x, weight, bias, stride, padding, dilation, groups)."""
    x = args[0]
    params = _params(args, kwargs, {"weight": 1, "bias": 2})
    w = params["weight"]
    groups = arg(args, kwargs, 6, "groups", 1)
    if _computed(params) or w is None or not isinstance(groups, int):
        return lose(an, node, x, "convolution with a weight or groups computed at run time cannot follow a cut")
    owner = _owner(an, params, _CONVS[rule.params["dims"]], ("weight", "bias"))
    if owner is not None and (owner[1].groups != groups or getattr(owner[1], "transposed", False)):
        owner = None
    if owner is None and groups != 1:
        return lose(an, node, x, "grouped convolution with a group count fixed in code cannot follow a cut")
    n_in = w.shape[1] * groups
    in_ids, out_ids = _io_slots(an, owner, w, params["bias"], n_in, w.shape[0])
    if x.tracked and x.axis == 1 and len(x.ids) == n_in:
        an.sets.union_arrays(in_ids, x.ids)
    else:
        an.freeze(in_ids, node, f"input channel layout unknown ({x.why or 'not on axis 1'})")
        lose(an, node, x, "feeds a convolution along an unexpected axis")
    if groups > 1:  # whole groups only, as for the module
        ipg, opg = n_in // groups, w.shape[0] // groups
        for k in range(groups):
            an.sets.union_all(np.concatenate([in_ids[k * ipg:(k + 1) * ipg], out_ids[k * opg:(k + 1) * opg]]))
    if owner is not None:
        out = an.shape(node)
        an.record_call(node, owner[0], "conv", int(np.prod(out[2:])) * int(np.prod(w.shape[2:])), groups)
        an.note_probe(owner[0], node)
    return an.value(node, 1, out_ids)


def _io_slots(an, owner, w: Value, bias: Value | None, n_in: int, n_out: int):
    if owner is not None:
        name, module = owner
        return an.slot(name, "in", n_in, module), an.slot(name, "out", n_out, module)
    in_ids = an.param_slot(w.param, 1, w.shape[1], consumes=True)
    out_ids = an.param_slot(w.param, 0, w.shape[0])
    if bias is not None:
        an.sets.union_arrays(an.param_slot(bias.param, 0, bias.shape[0]), out_ids)
    return in_ids, out_ids


# ---------------------------------------------------------------- size arithmetic and checks


def arith(an, node, rule, args, kwargs):
    """Comparisons, floordiv, mod...: on tensors they act per element (like add); on sizes and
    other run-time numbers they are bookkeeping that touches no channel."""
    if any(isinstance(a, Value) for a in args):
        return broadcast(an, node, rule, args, kwargs)
    return Dynamic(node.name)


def expand(an, node, rule, args, kwargs):
    """Tensor.expand: broadcasts size-1 dims (and may add leading ones). A stored parameter
    stays a parameter (a class token expanded over the batch), so a later cat or add couples it."""
    x = args[0]
    sizes = list(args[1:]) if len(args) > 2 or not isinstance(args[1], (tuple, list)) else list(args[1])
    out = an.shape(node)
    lead = len(out) - len(x.shape)
    follows = [isinstance(s, Dynamic) or s == -1 for s in sizes[lead:]]
    if x.param is not None and all(f or d == 1 for f, d in zip(follows, x.shape)):
        return Value(out, why=x.why, param=x.param, param_lead=x.param_lead + lead)
    if not x.tracked:
        return an.untracked(node, x.why)
    if x.shape[x.axis] != 1 and follows[x.axis]:
        return an.value(node, x.axis + lead, x.ids)
    return lose(an, node, x, "expands the channel axis to a size fixed in code")

