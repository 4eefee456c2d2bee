"""nn.LayerNorm. Normalising within each channel (channels outside ``normalized_shape``) it keeps
the layout. Over the channels, its statistics mix them all: protected, unless the user opts in
(``an.layernorm_widths``, ``--prune-layernorm``): then its ``chan`` slot is cut like a per-channel
layer and the proof compares against a LayerNorm over the kept channels (:class:`KeptLayerNorm`)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from compress.artifacts.cuts import Cut
from compress.layers.base import LayerHandler, slice_attrs
from compress.layers.slicing import keep_index
from compress.layers.values import MIX_REASON, keep_layout, lose

TYPES = (nn.LayerNorm,)


def rule(an, node, args, kwargs, module):
    x = args[0]
    ndim = len(x.shape)
    normalized = range(ndim - len(module.normalized_shape), ndim)
    if x.tracked and x.axis not in normalized:  # normalises within each channel
        return keep_layout(an, node, x)
    if x.tracked and len(module.normalized_shape) == 1:
        chan = an.slot(node.target, "chan", module.normalized_shape[0], module)
        an.sets.union_arrays(chan, x.ids)
        if an.layernorm_widths and x.axis == ndim - 1 and type(module).forward is nn.LayerNorm.forward:
            return an.value(node, x.axis, x.ids)  # opted in: sliced like a per-channel layer
        an.sets.union_all(chan)
        an.freeze(chan, node, MIX_REASON.format(op="LayerNorm"))
        return an.value(node, x.axis, x.ids)
    return lose(an, node, x, MIX_REASON.format(op="LayerNorm"))


def cut(name: str, m: nn.Module, roles: dict[str, Cut]) -> None:
    keep = keep_index(roles.get("chan"), m.normalized_shape[-1], name)
    slice_attrs(m, ("weight", "bias"), keep)
    m.normalized_shape = (len(keep),)


def zero(m: nn.Module, cut: Cut, removed: list[int]) -> nn.Module:
    """An opted-in LayerNorm width: the reference normalises over the kept channels only."""
    return KeptLayerNorm(m, list(cut.keep))


class KeptLayerNorm(nn.Module):
    """The reference for a LayerNorm that loses channels: statistics over the kept channels only
    (what the pruned LayerNorm computes); the removed channels, which no kept output reads, are 0."""

    def __init__(self, ln: nn.LayerNorm, keep: list[int]):
        super().__init__()
        self.ln = ln
        self.register_buffer("keep", torch.as_tensor(keep, dtype=torch.long))

    def forward(self, x):
        w = self.ln.weight[self.keep] if self.ln.weight is not None else None
        b = self.ln.bias[self.keep] if self.ln.bias is not None else None
        out = torch.zeros_like(x)
        out[..., self.keep] = F.layer_norm(x[..., self.keep], (len(self.keep),), w, b, self.ln.eps)
        return out


HANDLER = LayerHandler(rule=rule, cut=cut, zero=zero, probe="norm")
