"""A layer handler: everything the tool knows about one layer type, in one object.

The graph asks it how the layer maps channels (``rule``), the surgery how to slice it (``cut``),
the proof how to make the original ignore removed input channels (``zero``), the MAC profile what
one call costs (``macs``, ``row``), the deploy checks which width kernels pad (``width``) and the
latency table which operator to time (``layer_spec``). Built-in types have one file each in
``compress/layers/``; ``compress.register_layer`` adds a user's own.

Cut records name a layer and a *role*: ``in``/``out`` (a conv's or linear's channels),
``chan`` (a per-channel layer) or a role of the layer's own (attention's ``heads``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

from compress.artifacts.cuts import Cut
from compress.layers.slicing import keep_index, set_param
from compress.layers.values import Value, lose

Rule = Callable[..., Any]  # rule(an, node, args, kwargs, module) -> Value (see compress.layers.values)
Slice = Callable[[str, nn.Module, dict], None]  # cut(name, module, {role: Cut record}): edit in place
Zero = Callable[[nn.Module, Cut, list], Any]  # zero(module, Cut record, removed) -> replacement or None


@dataclass(frozen=True)
class LayerHandler:
    """What one layer type does to channels and how to cut it. Only ``rule`` and ``cut`` are required."""

    rule: Rule
    cut: Slice
    # the proof's reference: make ``module`` (a copy of the original's) ignore the ``removed``
    # indices of the cut record; return a module to put in its place, or None (edited in place).
    # None: the layer never reads one channel into another, nothing to zero.
    zero: Zero | None = None
    # importance: "norm" scores the channels at its output (a conv or linear just before it is
    # scored there instead), "layer" scores them at a conv's or linear's output. "": not a probe.
    probe: str = ""
    macs: Callable[[nn.Module, torch.Tensor, torch.Tensor], int] | None = None  # per sample, one call
    row: Callable[[nn.Module], tuple[int, int, tuple[int, ...] | None, int]] | None = None  # in, out, kernel, groups
    width: Callable[[nn.Module], int] | None = None  # the output width tensor-core kernels pad
    layer_spec: Callable[[nn.Module, tuple[int, ...]], Any] | None = None  # compress.export.layer_models.LayerSpec
    # a module traced through (not a leaf) whose forward splits its input's channel axis with
    # sizes computed from its attributes: ``split(module)`` is the sizes argument it passes
    # (an int or a list; None: no split). The graph follows that split and ``cut`` rewrites the
    # attributes (role "split", its input's channels); see ``compress.layers.splits``.
    split: Callable[[nn.Module], Any] | None = None

    def __post_init__(self):
        if self.macs is not None and self.row is None:
            raise TypeError("a LayerHandler that counts MACs also gives its row (in, out, kernel, groups)")


def per_channel_rule(an, node, x: Value, module: nn.Module, n: int, axis: int = 1) -> Value:
    """A layer with one parameter (or statistic) per channel on ``axis``: its ``chan`` slot is
    coupled with the input's channels, which the output keeps."""
    chan = an.slot(node.target, "chan", n, module)
    if x.tracked and x.axis == axis and len(x.ids) == n:
        an.sets.union_arrays(chan, x.ids)
        return an.value(node, axis, x.ids)
    an.freeze(chan, node, f"input channel layout unknown ({x.why or f'not on axis {axis}'})")
    lose(an, node, x, "per-channel layer on an unexpected axis")
    return an.value(node, axis, chan)


def slice_attrs(module: nn.Module, attrs: tuple[str, ...], keep: torch.Tensor, dim: int = 0) -> None:
    """Keep indices ``keep`` along ``dim`` of each parameter or buffer named in ``attrs`` (absent ones are skipped)."""
    for attr in attrs:
        value = getattr(module, attr, None)
        if isinstance(value, torch.Tensor):
            set_param(module, attr, value.index_select(dim, keep.to(value.device)))


def per_channel(size_attr: str | None, params: tuple[str, ...], *, axis: int = 1, probe: str = "") -> LayerHandler:
    """The handler of a layer holding one value per channel of ``axis`` in each of ``params``
    (and the channel count in ``size_attr``): e.g. ``per_channel("num_features", ("weight", "bias"))``.
    ``size_attr=None``: the layer keeps no count, the length of ``params[0]`` is its width (torchvision's
    ``FrozenBatchNorm2d``). It never reads one channel into another, so the proof has nothing to zero."""

    def size(module) -> int:
        return getattr(module, size_attr) if size_attr else getattr(module, params[0]).shape[0]

    def rule(an, node, args, kwargs, module):
        return per_channel_rule(an, node, args[0], module, size(module), axis)

    def cut(name, module, roles):
        keep = keep_index(roles.get("chan"), size(module), name)
        slice_attrs(module, params, keep)
        if size_attr:
            setattr(module, size_attr, len(keep))

    return LayerHandler(rule=rule, cut=cut, probe=probe)
