"""nn.Embedding: a table of learned vectors whose ``embedding_dim`` channels are prunable.

In a vision model an Embedding holds learned tokens looked up by index: position embeddings
(``self.pos(self.positions)``), register or class tokens, a codebook. Its input holds indices,
not channels; its output carries ``embedding_dim`` channels on the last axis (an ``out`` slot:
the weight's columns), which the add or cat that joins it to the patch tokens couples with
theirs. The cut keeps the kept columns. It reads no channel into another, so the proof has
nothing to zero, and it costs no multiply-accumulates. ``max_norm`` rescales each looked-up row
by its norm over all channels, so removing one would change the others: protected.

Before this file, an Embedding was an unknown op and every token stream it joined was protected.
"""

from __future__ import annotations

import torch.nn as nn

from compress.artifacts.cuts import Cut
from compress.layers.base import LayerHandler, slice_attrs
from compress.layers.slicing import keep_index
from compress.layers.values import MIX_REASON, Value, lose

TYPES = (nn.Embedding,)


def rule(an, node, args, kwargs, module):
    x = args[0]
    if isinstance(x, Value) and x.tracked:  # indices computed from channels: a cut would change them
        lose(an, node, x, "used as embedding indices")
    out = an.slot(node.target, "out", module.embedding_dim, module)
    if module.max_norm is not None:
        an.freeze(out, node, MIX_REASON.format(op="Embedding with max_norm"))
    return an.value(node, len(an.shape(node)) - 1, out)


def cut(name: str, m: nn.Module, roles: dict[str, Cut]) -> None:
    keep = keep_index(roles.get("out"), m.embedding_dim, name)
    slice_attrs(m, ("weight",), keep, dim=1)
    m.embedding_dim = len(keep)


HANDLER = LayerHandler(rule=rule, cut=cut)
