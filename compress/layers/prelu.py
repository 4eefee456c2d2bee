"""nn.PReLU: one slope per channel (``chan`` slot), or a single shared slope that any width keeps."""

from __future__ import annotations

import torch.nn as nn

from compress.layers.base import LayerHandler, per_channel
from compress.layers.values import keep_layout

TYPES = (nn.PReLU,)
_PER_CHANNEL = per_channel("num_parameters", ("weight",))


def rule(an, node, args, kwargs, module):
    if module.num_parameters == 1:
        return keep_layout(an, node, args[0])
    return _PER_CHANNEL.rule(an, node, args, kwargs, module)


HANDLER = LayerHandler(rule=rule, cut=_PER_CHANNEL.cut)
