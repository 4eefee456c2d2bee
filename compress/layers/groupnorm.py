"""nn.GroupNorm: statistics per group of channels, so only whole groups can go; one group mixes all."""

from __future__ import annotations

import torch.nn as nn

from compress.artifacts.cuts import Cut
from compress.layers.base import LayerHandler, per_channel_rule, slice_attrs
from compress.layers.slicing import keep_index
from compress.layers.values import MIX_REASON

TYPES = (nn.GroupNorm,)


def rule(an, node, args, kwargs, module):
    out = per_channel_rule(an, node, args[0], module, module.num_channels)
    chan = an.slot(node.target, "chan", module.num_channels, module)
    g = module.num_groups
    per = module.num_channels // g
    for k in range(g):  # statistics are per group: only whole groups can go
        an.sets.union_all(chan[k * per:(k + 1) * per])
    if g == 1:
        an.freeze(chan, node, MIX_REASON.format(op="GroupNorm with one group"))
    return out


def cut(name: str, m: nn.Module, roles: dict[str, Cut]) -> None:
    keep = keep_index(roles.get("chan"), m.num_channels, name)
    per = m.num_channels // m.num_groups
    slice_attrs(m, ("weight", "bias"), keep)
    m.num_channels, m.num_groups = len(keep), len(keep) // per


HANDLER = LayerHandler(rule=rule, cut=cut, probe="norm")
