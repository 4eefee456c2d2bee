"""Which handler a module has: a known attention module (matched by class in
``compress.graph.attention``) or a registered layer type (``compress.layers.registry``).

The tracer, the graph, the surgery and the proof all ask here, so attention and the layer types
go through the same :class:`~compress.layers.base.LayerHandler` interface.
"""

from __future__ import annotations

import torch.nn as nn

from compress.artifacts.cuts import Cut
from compress.graph import attention
from compress.layers import registry
from compress.layers.base import LayerHandler


def _zero_attention(module: nn.Module, cut: Cut, removed: list[int]) -> None:
    attention.zero(module, cut.role, removed)


ATTENTION = LayerHandler(
    rule=lambda an, node, args, kwargs, module: attention.attention(an, node, None, args, kwargs, module),
    cut=attention.cut,
    zero=_zero_attention,
)


def handler_for(module: nn.Module) -> LayerHandler | None:
    """For the surgery and the proof (a registered ancestor's handler covers a subclass)."""
    return ATTENTION if attention.handles(module) else registry.handler_for(module)


def rule_for(module: nn.Module) -> LayerHandler | None:
    """For the graph: None when the module overrides its registered ancestor's ``forward``."""
    return ATTENTION if attention.handles(module) else registry.rule_for(module)


def is_leaf(module: nn.Module) -> bool:
    """Traced as one node: known attention, or a class registered as a layer."""
    return attention.handles(module) or registry.is_registered(module)
