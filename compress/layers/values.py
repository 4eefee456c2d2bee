"""What a channel rule reads and returns: :class:`Value` (a tensor's shape and which axis carries
which channel ids) and :class:`Dynamic` (a run-time number), plus the small helpers every rule uses.

A rule is called as ``rule(an, node, args, kwargs, module)`` where ``an`` is the graph analyser
(``compress.graph.analysis.Analyzer``: ``an.slot``, ``an.value``, ``an.freeze``, ``an.sets``...),
``node`` the fx node, ``args``/``kwargs`` the resolved arguments (``Value`` for tensors) and
``module`` the layer. It returns the output's ``Value``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIX_REASON = "{op} mixes values across the channel axis: removing one channel would change the others"


@dataclass
class Value:
    """What the graph knows about a tensor: its shape and which axis carries channel ids."""

    shape: tuple[int, ...]
    axis: int | None = None  # the channel-carrying axis (in the full shape, batch included)
    ids: np.ndarray | None = None  # one id per index along ``axis``
    why: str = ""  # when untracked: where the channel layout was lost
    param: str | None = None  # set for get_attr parameters/buffers (and their broadcasts)
    param_lead: int = 0  # leading dims a broadcast (expand) added in front of the parameter's own

    @property
    def tracked(self) -> bool:
        return self.axis is not None


@dataclass(frozen=True)
class Dynamic:
    """A non-tensor value only known at run time (e.g. ``x.size(1)``)."""

    node: str


def first_value(args) -> Value | None:
    for a in args:
        if isinstance(a, Value):
            return a
    return None


def arg(args, kwargs, index, name, default=None):
    """The argument given by keyword ``name`` or at position ``index``."""
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def norm_dim(dim: int, ndim: int) -> int:
    return dim + ndim if dim < 0 else dim


def lose(an, node, x: Value | None, why: str) -> Value:
    """Protect what ``x`` carries and return an untracked output."""
    if x is not None and x.tracked:
        an.freeze(x.ids, node, why)
    return an.untracked(node, why)


def keep_layout(an, node, x: Value) -> Value:
    return an.value(node, x.axis, x.ids) if x.tracked else an.untracked(node, x.why)
