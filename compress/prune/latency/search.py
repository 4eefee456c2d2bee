"""Latency-aware selection: remove the channels that cost least importance per millisecond saved.

Each channel group (a connected channel space: a block's inner width, a residual stream) shrinks
in *moves*: from its current width to a narrower allowed one, dropping its lowest-scored units.
Allowed widths respect the per-layer cap, the minimum width and ``round_to`` (a slot owned by one
group only ends on a multiple of it, or unchanged). Moves look a few widths ahead, so a width at
which kernels do not get faster is skipped for the next one that does. At every step the move
with the least importance lost per millisecond of predicted latency saved wins, until the
prediction meets the goal; then moves are taken back, most important first, while it still does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compress.graph.groups import WIDTH_ROLES, Groups
from compress.prune.latency.model import LatencyModel

LOOKAHEAD = 4  # allowed widths examined past the current one, per group and step


@dataclass
class GroupMoves:
    order: list[int]  # prunable unit roots, least important first
    prefix: np.ndarray  # prefix[r] = summed score of the first r units
    stops: list[int]  # allowed removal counts, ascending (0 first)
    slots: list[int]  # slot indices the group touches
    deltas: list[dict[int, int]]  # deltas[j][slot] = channels removed from slot at stops[j]
    own: dict[int, int]  # slots only this group narrows -> their full width
    at: int = 0  # index into stops

    def width(self, j: int) -> tuple[int, ...]:
        """Widths of the owned slots at stops[j]."""
        return tuple(n - self.deltas[j].get(i, 0) for i, n in sorted(self.own.items()))

    def keep_stops(self, keep: list[int]) -> None:
        """Only the stops at these indices remain (0, the unpruned width, always does)."""
        keep = sorted({0, *keep})
        self.stops = [self.stops[j] for j in keep]
        self.deltas = [self.deltas[j] for j in keep]


@dataclass
class LatencySelection:
    removed: list[int]
    predicted_ms: float
    reached: bool


def search(groups: Groups, scores: dict[int, float], model: LatencyModel, goal_ms: float, limits: list[int],
           round_to: int, probe=None) -> LatencySelection:
    """``probe`` (a :class:`compress.prune.latency.probe.WidthProbe`) drops widths that save nothing in context."""
    cands = candidates(groups, scores, limits, round_to)
    if probe is not None:
        probe.drop_dead(cands)
    widths = np.array([len(r) for r in groups.slot_roots], dtype=np.int64)
    times = model.layer_times(widths)
    raw = float(times.sum())
    affected_of = {id(g): sorted({k for i in g.slots for k in model.by_slot.get(i, [])}) for g in cands}

    def trial(g: GroupMoves, j: int):
        """(new raw, {term: ms}, new widths of the group's slots) if g moves to stops[j]."""
        now, then = g.deltas[g.at], g.deltas[j]
        new_w = {i: int(widths[i] - (then.get(i, 0) - now.get(i, 0))) for i in g.slots}
        affected = affected_of[id(g)]
        new_t = {}
        for k in affected:
            t = model.terms[k]
            new_t[k] = model.term_ms(k, new_w.get(t.i_in, int(widths[t.i_in])), new_w.get(t.i_out, int(widths[t.i_out])))
        return raw + sum(new_t[k] - times[k] for k in affected), new_t, new_w

    def apply(g: GroupMoves, j: int, result) -> None:
        nonlocal raw
        raw, new_t, new_w = result
        for k, v in new_t.items():
            times[k] = v
        for i, w in new_w.items():
            widths[i] = w
        g.at = j

    while model.from_raw(raw) > goal_ms:
        best = None
        for g in cands:
            for j in range(g.at + 1, min(len(g.stops), g.at + 1 + LOOKAHEAD)):
                result = trial(g, j)
                saved = model.from_raw(raw) - model.from_raw(result[0])
                if saved <= 1e-12:
                    continue
                cost = float(g.prefix[g.stops[j]] - g.prefix[g.stops[g.at]])
                key = cost / saved
                if best is None or key < best[0]:
                    best = (key, g, j, result)
        if best is None:
            break
        apply(best[1], best[2], best[3])
    reached = model.from_raw(raw) <= goal_ms
    if reached:  # take back what the goal does not need, most importance first
        while True:
            back = None
            for g in cands:
                if g.at == 0:
                    continue
                result = trial(g, g.at - 1)
                if model.from_raw(result[0]) <= goal_ms:
                    gain = float(g.prefix[g.stops[g.at]] - g.prefix[g.stops[g.at - 1]])
                    if back is None or gain > back[0]:
                        back = (gain, g, result)
            if back is None:
                break
            apply(back[1], back[1].at - 1, back[2])
    removed = [r for g in cands for r in g.order[:g.stops[g.at]]]
    return LatencySelection(removed=removed, predicted_ms=float(model.from_raw(raw)), reached=bool(reached))


def candidates(groups: Groups, scores: dict[int, float], limits: list[int], round_to: int) -> list[GroupMoves]:
    owners: dict[int, set[int]] = {}
    for root in groups.prunable_units:
        for i, _ in groups.units[root].slots:
            owners.setdefault(i, set()).add(root)
    out = []
    for cg in groups.groups:
        order = sorted((r for r in cg.units if not groups.units[r].frozen), key=lambda r: (scores.get(r, 0.0), r))
        if not order:
            continue
        slots = sorted({i for r in order for i, _ in groups.units[r].slots})
        members = set(order)
        own = [i for i in slots if owners[i] <= members and groups.slots[i].role in WIDTH_ROLES]
        sizes = {i: len(groups.slot_roots[i]) for i in own}
        lost: dict[int, int] = {}
        stops, deltas = [0], [{}]
        for n, root in enumerate(order, start=1):
            unit_slots = groups.units[root].slots
            for i, c in unit_slots:
                lost[i] = lost.get(i, 0) + c
            if any(lost[i] > limits[i] for i, _ in unit_slots):
                break
            if all((sizes[i] - lost.get(i, 0)) % round_to == 0 or lost.get(i, 0) == 0 for i in own):
                stops.append(n)
                deltas.append(dict(lost))
        if len(stops) > 1:
            scores_ = np.array([scores.get(r, 0.0) for r in order], dtype=np.float64)
            out.append(GroupMoves(order, np.concatenate([[0.0], np.cumsum(scores_)]), stops, slots, deltas, sizes))
    return out
