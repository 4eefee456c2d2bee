"""THE registry of layer types: module class -> :class:`LayerHandler`.

Every place that needs to know a layer type asks here: the tracer (a registered class is a leaf),
the graph (``rule_for``), the surgery and the proof (``handler_for``), the MAC profile, the deploy
width check and the latency table. Built-in types are registered below, one file each;
:func:`register_layer` (``compress.register_layer``) adds a user's own. A module of a class with
no handler (and no entry in ``compress.graph.ops``) is an unknown op: what flows through it is
protected and reported.
"""

from __future__ import annotations

import torch.nn as nn

from compress.errors import UsageError
from compress.layers import batchnorm, conv, embedding, frozen_batchnorm, groupnorm, layernorm, linear, prelu, splits
from compress.layers.base import LayerHandler

BUILT_IN = (conv, linear, batchnorm, frozen_batchnorm, groupnorm, layernorm, prelu, embedding)  # each file: TYPES and HANDLER

_HANDLERS: dict[type, LayerHandler] = {}
_NAMED: dict[str, LayerHandler] = dict(splits.NAMED)  # classes of optional packages, by qualified name


def _registered(cls: type) -> LayerHandler | None:
    return _HANDLERS.get(cls) or _NAMED.get(f"{cls.__module__}.{cls.__qualname__}")


registered = _registered  # the public name: the handler registered for exactly this class, or None


def register_layer(module_type: type, handler: LayerHandler, *, replace: bool = False) -> None:
    """Teach the tool a layer type: how it maps, cuts and is proved (see ``LayerHandler``).

    A model using ``module_type`` must be built (and a saved one reloaded) after this call.
    Subclasses are covered when they keep ``module_type``'s ``forward``.
    """
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise UsageError(f"register_layer: {module_type!r} is not an nn.Module class",
                         "pass the layer's class, e.g. register_layer(MyLayer, handler)")
    if not isinstance(handler, LayerHandler):
        raise UsageError(f"register_layer: the handler for {module_type.__name__} is not a LayerHandler",
                         "build one with compress.LayerHandler(rule=..., cut=...) or compress.layers.base.per_channel")
    if module_type in _HANDLERS and not replace:
        raise UsageError(f"register_layer: {module_type.__name__} already has a handler",
                         "pass replace=True to override it")
    _HANDLERS[module_type] = handler


def handler_for(module: nn.Module) -> LayerHandler | None:
    """The handler of ``module``'s class or its nearest registered ancestor (surgery, proof,
    profile: a subclass that calls its parameters through functional ops is still sliced as one)."""
    for cls in type(module).__mro__:
        if (handler := _registered(cls)) is not None:
            return handler
    return None


def rule_for(module: nn.Module) -> LayerHandler | None:
    """For the graph: the handler only if ``module`` runs its registered ancestor's ``forward``
    (an override could compute anything, e.g. weight standardisation: then it is unknown)."""
    for cls in type(module).__mro__:
        if (handler := _registered(cls)) is not None:
            return handler if type(module).forward is cls.forward else None
    return None


def is_registered(module: nn.Module) -> bool:
    """Exactly this class was registered: the tracer keeps it as one node (a leaf), unless its
    handler only declares a split inside it (``LayerHandler.split``: traced through)."""
    handler = _registered(type(module))
    return handler is not None and handler.split is None


def output_width(module: nn.Module) -> int | None:
    """The output width tensor-core kernels pad, for layers that have one (None otherwise)."""
    handler = handler_for(module)
    return handler.width(module) if handler is not None and handler.width is not None else None


def layer_spec(module: nn.Module, in_shape: tuple[int, ...]):
    """The latency table's description of ``module`` called on ``in_shape`` (batch first)."""
    handler = handler_for(module)
    if handler is None or handler.layer_spec is None:
        raise UsageError(f"no latency model for layer type {type(module).__name__}",
                         "only convolutions and linear layers are timed per layer")
    return handler.layer_spec(module, in_shape)


for _file in BUILT_IN:
    for _type in _file.TYPES:
        register_layer(_type, _file.HANDLER)
