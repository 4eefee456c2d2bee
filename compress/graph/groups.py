"""From coupled channel ids to what a user and a planner reason about.

*Units* are the atoms of pruning: a set of ids removed together (one channel of a residual
stream across all its layers, one group of a grouped conv...). *Channel groups* are connected
channel spaces (a whole residual stream, a block's inner width) made of units; they are what
the report lists, with the reasons a group is (partly) protected.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from compress.graph.analysis import ChannelGraph, Slot
from compress.graph.unionfind import Protection

WIDTH_ROLES = ("out", "chan", "heads", "head_dim")  # slots whose length is a layer width


@dataclass
class Unit:
    root: int
    size: int  # channels it removes from the widest layer it touches
    slots: list[tuple[int, int]]  # (slot index, how many of the slot's indices belong here)
    frozen: bool


@dataclass
class ChannelGroup:
    index: int
    layers: list[str]
    width: int
    units: list[int]
    prunable: int  # channels that may be removed
    protected: list[Protection] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "layers": self.layers,
            "width": self.width,
            "channels_prunable": self.prunable,
            "protected": [{"op": p.op, "layer": p.layer, "why": p.why} for p in self.protected],
        }


@dataclass
class Groups:
    graph: ChannelGraph
    slots: list[Slot]
    slot_roots: list[np.ndarray]
    units: dict[int, Unit]
    groups: list[ChannelGroup]

    @property
    def prunable_units(self) -> list[int]:
        return [r for r, u in self.units.items() if not u.frozen]

    def protected_groups(self) -> list[ChannelGroup]:
        return [g for g in self.groups if g.protected]

    def call_slots(self) -> list[tuple]:
        """``(layer call, input slot index, output slot index)`` of each conv/linear call (None: no slot)."""
        index = {(s.name, s.role): i for i, s in enumerate(self.slots)}
        return [(c, index.get((c.module, "in")), index.get((c.module, "out"))) for c in self.graph.calls]

    def kept_widths(self, removed: np.ndarray) -> np.ndarray:
        """Channels each slot keeps when the ids marked in ``removed`` (a mask over ids) go."""
        return np.array([int((~removed[roots]).sum()) for roots in self.slot_roots], dtype=np.int64)


def structure_of(groups: Groups, root: int) -> str:
    """The kind of structure a unit removes: an attention head, a dim of every head, or channels."""
    roles = {groups.slots[i].role for i, _ in groups.units[root].slots}
    return "heads" if "heads" in roles else "head_dim" if "head_dim" in roles else "channels"


def per_structure(groups: Groups, scores: dict[int, float]) -> dict[int, float]:
    """Each score replaced by its quantile among units of its structure (heads, head dims,
    channels), so every kind is ranked among its own instead of competing on raw magnitude (a
    head sums many channels; heads may be scored by weights, channels by activations).
    Unchanged when there is one kind; kept (+inf) scores stay kept."""
    kinds = {r: structure_of(groups, r) for r in scores}
    if len(set(kinds.values())) < 2:
        return scores
    out = dict(scores)
    for kind in set(kinds.values()):
        finite = sorted((s, r) for r, s in scores.items() if kinds[r] == kind and np.isfinite(s))
        for rank, (_, r) in enumerate(finite):
            out[r] = (rank + 1) / len(finite)
    return out


def apply_policy(graph: ChannelGraph, *, keep: tuple[str, ...] = (), prune_stem: bool = False) -> None:
    """Freeze what the user (or the defaults) says never loses channels."""
    sets = graph.sets
    for (name, role), slot in graph.slots.items():
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in keep):
            sets.freeze(slot.ids, Protection("policy", name, "kept by --keep"))
    if prune_stem or len(graph.input_ids) == 0:
        return
    input_roots = set(sets.roots(graph.input_ids).tolist())
    for (name, role), slot in graph.slots.items():
        # a stem reads the image and nothing else; a layer reading a stream that merely carries a few of the
        # image's channels (ENet concatenates the pooled image into its features) is not one: those image
        # channels are frozen as the input anyway
        roots = set(sets.roots(slot.ids).tolist())
        if role == "in" and roots and roots <= input_roots:
            out = graph.slots.get((name, "out"))
            if out is not None:
                sets.freeze(out.ids, Protection("policy", name, "input stem (pass --prune-stem to allow)"))


def build_groups(graph: ChannelGraph) -> Groups:
    slots = list(graph.slots.values())
    slot_roots = [graph.roots(s.ids) for s in slots]
    unit_slots: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for i, roots in enumerate(slot_roots):
        values, counts = np.unique(roots, return_counts=True)
        for r, c in zip(values.tolist(), counts.tolist()):
            unit_slots[r].append((i, c))
    units = {}
    for root, members in unit_slots.items():
        widths = [c * slots[i].per_id for i, c in members if slots[i].role in WIDTH_ROLES] or [1]
        units[root] = Unit(root, max(widths), members, graph.sets.is_frozen(root))
    return Groups(graph, slots, slot_roots, units, _connected_groups(graph, slots, units))


def _connected_groups(graph: ChannelGraph, slots: list[Slot], units: dict[int, Unit]) -> list[ChannelGroup]:
    """Slots sharing a unit belong to one channel space; group them (small union-find)."""
    parent = list(range(len(slots)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for unit in units.values():
        first = unit.slots[0][0]
        for i, _ in unit.slots[1:]:
            a, b = find(first), find(i)
            if a != b:
                parent[max(a, b)] = min(a, b)
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(len(slots)):
        members[find(i)].append(i)
    slot_units: dict[int, list[int]] = defaultdict(list)
    for root, unit in units.items():
        slot_units[find(unit.slots[0][0])].append(root)
    groups = []
    for index, (key, idx) in enumerate(sorted(members.items())):
        unit_roots = sorted(slot_units[key])
        protected: list[Protection] = []
        for r in unit_roots:
            for p in graph.sets.reasons(r):
                if p not in protected:
                    protected.append(p)
        width_slots = [slots[i] for i in idx if slots[i].role in WIDTH_ROLES]
        groups.append(ChannelGroup(
            index=index,
            layers=[f"{slots[i].name}:{slots[i].role}" for i in idx],
            width=max((len(s.ids) for s in width_slots), default=len(slots[idx[0]].ids)),
            units=unit_roots,
            prunable=sum(units[r].size for r in unit_roots if not units[r].frozen),
            protected=protected,
        ))
    return groups
