"""The layers whose latency depends on pruning, and the widths a table measures them at.

A *term* is one conv/linear call of the traced network with the slots (see
``compress.graph.analysis``) holding its input and output channels. Its latency is a function of
the two kept widths only (grouped and depthwise convs: of the input width, whole groups go;
a grouped conv that keeps its groups, ``LayerCall.keeps_groups``: of both).
Layers whose widths can never change are left out: the fitted offset of the latency model
(``compress.prune.latency.model``) carries them with everything else that is not a conv or a linear.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace


from compress.graph.groups import Groups
from compress.export.layer_models import LayerSpec
from compress.layers.registry import layer_spec

MAX_POINTS = 8  # grid points per width dimension; steps double (8, 16, 32 ...) to stay under it


@dataclass(frozen=True)
class Term:
    layer: str
    spec: LayerSpec
    i_in: int  # slot index of the input channels
    i_out: int  # slot index of the output channels
    grid_in: tuple[int, ...]
    grid_out: tuple[int, ...]

    def points(self) -> list[tuple[int, int]]:
        """The (cin, cout) pairs a table holds for this term."""
        if self.spec.grouped:
            return [(c, c * self.spec.n_out // self.spec.n_in) for c in self.grid_in]
        return [(i, o) for i in self.grid_in for o in self.grid_out]


def grid(n: int, round_to: int, varies: bool) -> tuple[int, ...]:
    """Widths measured for a dimension of ``n`` channels: multiples of a step, and ``n`` itself."""
    if not varies:
        return (n,)
    step = max(1, round_to)
    while n // step > MAX_POINTS:
        step *= 2
    return tuple(sorted({*range(step, n, step), n}))


def latency_terms(groups: Groups, round_to: int) -> list[Term]:
    varies = [any(not groups.units[r].frozen for r in set(roots.tolist())) for roots in groups.slot_roots]
    traced = groups.graph.traced
    terms = []
    for call, i_in, i_out in groups.call_slots():
        if i_in is None or i_out is None or not (varies[i_in] or varies[i_out]) or not call.in_shape:
            continue
        spec = layer_spec(traced.module(call.module), call.in_shape)
        grid_in, grid_out = grid(spec.n_in, round_to, varies[i_in]), grid(spec.n_out, round_to, varies[i_out])
        if call.keeps_groups:  # every group stays: both widths stay multiples of the group count
            spec = replace(spec, keeps_groups=True)
            grid_in = tuple(c for c in grid_in if c % spec.groups == 0) or (spec.n_in,)
            grid_out = tuple(c for c in grid_out if c % spec.groups == 0) or (spec.n_out,)
        elif spec.grouped:  # whole groups: the input width must stay a multiple of channels per group
            per_group = spec.n_in // spec.groups
            grid_in = tuple(c for c in grid_in if c % per_group == 0) or (spec.n_in,)
        terms.append(Term(call.module, spec, i_in, i_out, grid_in, grid_out))
    return terms


def model_key(terms: list[Term], input_shape) -> str:
    """Identifies the network as the latency table sees it: its varying layers and input."""
    text = json.dumps([list(input_shape or ()), *[[t.spec.key(), t.grid_in, t.grid_out] for t in terms]])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
