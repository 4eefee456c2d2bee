"""nn.Linear: channels on the last axis; ``in`` and ``out`` slots."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from compress.artifacts.cuts import Cut
from compress.export.layer_models import LayerSpec
from compress.layers.base import LayerHandler
from compress.layers.slicing import keep_index, set_param
from compress.layers.values import lose

TYPES = (nn.Linear,)


def rule(an, node, args, kwargs, module):
    x = args[0]
    name = node.target
    in_ids = an.slot(name, "in", module.in_features, module)
    out_ids = an.slot(name, "out", module.out_features, module)
    last = len(x.shape) - 1
    if x.tracked and x.axis == last and len(x.ids) == module.in_features:
        an.sets.union_arrays(in_ids, x.ids)
    else:
        an.freeze(in_ids, node, f"input feature layout unknown ({x.why or 'channels not on the last axis'})")
        lose(an, node, x, "feeds a Linear on an axis other than its channels")
    result = an.value(node, len(an.shape(node)) - 1, out_ids)
    out = an.shape(node)
    tokens = int(np.prod(out[:-1])) // max(out[0], 1) * an.rows_per_sample(node) if len(out) > 1 else 1
    an.record_call(node, name, "linear", tokens)
    return result


def cut(name: str, m: nn.Module, roles: dict[str, Cut]) -> None:
    keep_in = keep_index(roles.get("in"), m.in_features, name)
    keep_out = keep_index(roles.get("out"), m.out_features, name)
    if keep_out is not None:
        set_param(m, "weight", m.weight[keep_out])
        if m.bias is not None:
            set_param(m, "bias", m.bias[keep_out])
        m.out_features = len(keep_out)
    if keep_in is not None:
        set_param(m, "weight", m.weight[:, keep_in])
        m.in_features = len(keep_in)


def zero(m: nn.Module, cut: Cut, removed: list[int]) -> None:
    if cut.role == "in":
        m.weight[:, torch.as_tensor(removed, dtype=torch.long)] = 0
    return None


def macs(m: nn.Module, inputs: torch.Tensor, output: torch.Tensor) -> int:
    batch = output.shape[0] if output.dim() > 1 else 1
    return output.numel() * m.in_features // batch


def layer_spec(m: nn.Module, in_shape: tuple[int, ...]) -> LayerSpec:
    return LayerSpec("linear", tuple(int(v) for v in in_shape[1:]), m.in_features, m.out_features)


HANDLER = LayerHandler(rule=rule, cut=cut, zero=zero, probe="layer", macs=macs,
                       row=lambda m: (m.in_features, m.out_features, None, 1),
                       width=lambda m: m.out_features, layer_spec=layer_spec)
