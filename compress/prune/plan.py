"""Choosing what to remove: global ranking of units under per-layer caps and rounding.

``select`` ranks prunable units by score (ascending), walks that order removing a unit whenever
no layer would break its cap (max fraction removed, min width), then picks how far along that
order to go — by binary search — so that after rounding widths to multiples of ``round_to`` the
target is met: a fraction of prunable channels (``ratio``) or a MAC budget (``target_macs``).
Without ``--max-layer-ratio`` the caps of :data:`AUTO_CAPS` are tried in turn, each one only
*extending* the order of the one before: a target just out of reach of half-width layers takes
the few extra channels it needs from the next cap, instead of re-ranking everything under it.

A ``ratio`` target first caps every layer at the ratio itself, so each layer loses that share (the
criterion picks which channels) and only what rounding and protected layers leave short comes from
the next cap by rank. Ranked with no such cap, a channel budget drains whichever layers score lowest
per channel -- often a wide, cheap last stage: timm ``repvgg_a0`` at 0.3 lost 488 channels all from
its 1,280-wide final conv for 0.97x MACs. A MAC or latency target keeps the global ranking: there the
budget is the cost itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from compress.artifacts.cuts import Cut
from compress.errors import PruneError
from compress.checks import check_targets
from compress.graph import attention
from compress.graph.groups import WIDTH_ROLES, Groups

# Per-layer caps tried in turn when the user gives none: half a layer at most recovered best
# (ResNet-20 at --ratio 0.5: 80.65 % after recovery vs 78.05 % with 0.8), raised only as far as a
# target needs (a MAC target of 0.5x on a CIFAR ResNet, where only block-inner channels are free).
AUTO_CAPS = (0.5, 0.625, 0.75, 0.875)


@dataclass(frozen=True)
class PrunePolicy:
    ratio: float | None = None  # fraction of prunable channels to remove
    target_macs: float | None = None  # fraction of the original MACs to keep
    target_latency_ms: float | None = None  # measured latency to reach (compress.prune.latency)
    target_speedup: float | None = None  # or: original latency / this
    max_layer_ratio: float | None = None  # no layer loses more than this fraction; None: see caps()
    min_channels: int = 1  # no layer ends narrower than this
    round_to: int = 8  # surviving widths are multiples of this (or unchanged)
    keep: tuple[str, ...] = ()  # layer name patterns that never lose channels
    prune_stem: bool = False
    layernorm_widths: bool = False  # opt-in: widths an nn.LayerNorm normalises are prunable (needs recovery)

    def __post_init__(self):
        check_targets(self.ratio, self.target_macs, self.target_latency_ms, self.target_speedup,
                      max_layer_ratio=self.max_layer_ratio, round_to=self.round_to, min_channels=self.min_channels)

    def caps(self) -> tuple[float, ...]:
        """The per-layer caps to try, in order: the user's; for a ratio, the ratio itself and then the
        larger of :data:`AUTO_CAPS`; otherwise :data:`AUTO_CAPS`."""
        if self.max_layer_ratio is not None:
            return (self.max_layer_ratio,)
        if self.ratio is not None:
            return (self.ratio, *(c for c in AUTO_CAPS if c > self.ratio))
        return AUTO_CAPS

    @property
    def latency_target(self) -> bool:
        return self.target_latency_ms is not None or self.target_speedup is not None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Plan:
    removed: list[int]  # unit roots removed
    cuts: list[Cut]  # the cut records (compress.artifacts.cuts), replayed by compress.prune.surgery
    widths: dict[str, tuple[int, int]]  # "layer:role" -> (before, after) for width slots
    channels_prunable: int
    channels_removed: int
    macs_before: int
    macs_after: int
    limited_by_caps: bool = False
    max_layer_ratio: float | None = None  # the cap the plan was made under
    importance_kept: float | None = None  # share of the prunable units' summed score that stays
    notes: list[str] = field(default_factory=list)

    @property
    def ratio_removed(self) -> float:
        return self.channels_removed / self.channels_prunable if self.channels_prunable else 0.0


class MacModel:
    """MACs as a function of which units are removed: the conv/linear layers' terms, plus what
    the model computes outside them (attention matmuls, layers the graph does not size), measured
    once and held constant -- so the plan's figures are the same count as the summary's."""

    def __init__(self, groups: Groups):
        self.g = groups
        self.terms = []
        for call, i_in, i_out in groups.call_slots():
            self.terms.append((call.macs_per_io, i_in, i_out, call.groups, len(groups.slots[i_in].ids), call.keeps_groups))
        index = {(s.name, s.role): i for i, s in enumerate(groups.slots)}
        self.attention = [(a.tokens, a.window, *(index[k] for k in (a.in_slot, a.out_slot, (a.module, "heads"),
                                                           (a.module, "head_dim"))))
                          for a in groups.graph.attention]
        self.other = 0
        self.other = max(0, _measured_macs(groups) - self._layer_macs(np.zeros(len(groups.graph.sets), dtype=bool)))

    def macs(self, removed_mask: np.ndarray) -> int:
        return self.other + self._layer_macs(removed_mask)

    def _layer_macs(self, removed_mask: np.ndarray) -> int:
        kept = self.g.kept_widths(removed_mask)
        total = 0
        for per_io, i_in, i_out, groups, n_in, keeps_groups in self.terms:
            k_in, k_out = kept[i_in], kept[i_out]
            new_groups = groups if keeps_groups else groups * k_in // n_in if groups > 1 else 1
            total += per_io * (k_in // max(new_groups, 1)) * k_out
        for tokens, window, i_in, i_out, i_heads, i_dims in self.attention:
            total += attention.macs(tokens, window, kept[i_in], kept[i_out], kept[i_heads], kept[i_dims])
        return total


def _measured_macs(groups: Groups) -> int:
    """Total MACs of the traced model at batch 1 (0 when it cannot be measured)."""
    from compress.errors import UsageError
    from compress.prune.profile import count_macs

    traced = groups.graph.traced
    if traced.root is None or len(traced.example_shape) < 2:
        return 0
    try:
        return count_macs(traced.root, tuple(traced.example_shape[1:]))
    except UsageError:
        return 0


def select(groups: Groups, scores: dict[int, float], policy: PrunePolicy) -> Plan:
    """A plan for a ratio or MAC target (latency targets: ``compress.prune.latency.stage``)."""
    if policy.latency_target:
        raise PruneError("a latency target needs the latency model", "use compress.prune.latency.stage.latency_plan")
    caps = policy.caps()
    macs_model = MacModel(groups)
    order: list[int] = []
    for cap in caps:  # a raised cap only extends the order: what the lower cap allowed goes first
        order = _greedy_order(groups, scores, policy, cap, start=order)
        plan = _select_along(groups, scores, policy, order, cap, macs_model)
        if not plan.limited_by_caps:
            break
    if cap != caps[0] and policy.ratio is not None:  # more than one cap: the user gave none
        plan.notes.append(f"an even {caps[0]:.0%} per layer falls short after rounding and protected layers: the "
                          f"rest taken by importance, up to {cap:.0%} of a layer (per-layer cap raised; "
                          f"--max-layer-ratio fixes it)")
    elif cap != caps[0]:
        plan.notes.append(f"per-layer cap raised from {caps[0]:.0%} to {cap:.0%} to reach the target "
                          f"(pass --max-layer-ratio to fix it)")
    plan.max_layer_ratio = cap
    plan.importance_kept = importance_kept(groups, scores, plan.removed)
    return plan


def _select_along(groups: Groups, scores: dict[int, float], policy: PrunePolicy, order: list[int],
                  cap: float, macs_model: MacModel) -> Plan:
    """The shortest prefix of ``order`` that, rounded, meets the target (all of it if none does)."""
    n_ids = len(groups.graph.sets)
    macs_before = macs_model.macs(np.zeros(n_ids, dtype=bool))
    prunable = sum(groups.units[r].size for r in groups.prunable_units)

    def removed_at(k: int) -> list[int]:
        return _round(groups, order[:k], scores, policy)

    def mask_of(removed: list[int]) -> np.ndarray:
        mask = np.zeros(n_ids, dtype=bool)
        mask[removed] = True
        return mask

    if policy.ratio is not None:
        goal = policy.ratio * prunable
        met = lambda removed: sum(groups.units[r].size for r in removed) >= goal - 1e-9
    else:
        goal_macs = policy.target_macs * macs_before
        met = lambda removed: macs_model.macs(mask_of(removed)) <= goal_macs
    k = _smallest(len(order), lambda k: met(removed_at(k)))
    limited = k is None
    removed = removed_at(len(order) if limited else k)
    plan = _make_plan(groups, removed, macs_before, macs_model.macs(mask_of(removed)), prunable)
    plan.limited_by_caps = limited
    if limited:
        plan.notes.append(
            f"target not reachable under the layer caps (max {cap:.0%} per layer, "
            f"min width {policy.min_channels}, round to {policy.round_to}); removed what they allow"
        )
    return plan


def importance_kept(groups: Groups, scores: dict[int, float], removed: list[int]) -> float:
    total = sum(scores.get(r, 0.0) for r in groups.prunable_units)
    return 1.0 - sum(scores.get(r, 0.0) for r in set(removed)) / total if total > 0 else 1.0


def _smallest(n: int, ok) -> int | None:
    """Smallest k in [0, n] with ok(k), assuming ok is (nearly) monotone; None if ok(n) fails."""
    if not ok(n):
        return None
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def layer_limits(groups: Groups, policy: PrunePolicy, cap: float) -> list[int]:
    """How many indices each slot may lose."""
    limits = []
    for slot in groups.slots:
        n = len(slot.ids)
        floor = max(policy.min_channels, n - int(np.floor(n * cap)))
        limits.append(max(0, n - min(n, floor)))
    return limits


def _greedy_order(groups: Groups, scores: dict[int, float], policy: PrunePolicy, cap: float,
                  start: list[int] = ()) -> list[int]:
    """Units by ascending score, skipping any that would break a layer's cap; after ``start``."""
    limits = layer_limits(groups, policy, cap)
    lost = [0] * len(groups.slots)
    order = list(start)
    for root in order:
        for i, c in groups.units[root].slots:
            lost[i] += c
    taken = set(order)
    for root in sorted(groups.prunable_units, key=lambda r: (scores.get(r, 0.0), r)):
        if root in taken:
            continue
        unit = groups.units[root]
        if all(lost[i] + c <= limits[i] for i, c in unit.slots):
            for i, c in unit.slots:
                lost[i] += c
            order.append(root)
    return order


def _round(groups: Groups, removed: list[int], scores: dict[int, float], policy: PrunePolicy) -> list[int]:
    """Give back the best-scored removed units of any layer whose surviving width is not a
    multiple of ``round_to`` (widths left unchanged are always fine)."""
    if policy.round_to <= 1 or not removed:
        return list(removed)
    mask = np.zeros(len(groups.graph.sets), dtype=bool)
    mask[list(removed)] = True
    width_slots = [i for i, s in enumerate(groups.slots) if s.role in WIDTH_ROLES and s.role != "heads"]
    while True:
        changed = False
        for i in width_slots:
            roots = groups.slot_roots[i]
            gone = mask[roots]
            kept = len(roots) - int(gone.sum())
            if kept == len(roots) or kept % policy.round_to == 0:
                continue
            candidates = set(roots[gone].tolist())
            mask[min(candidates, key=lambda r: (-scores.get(r, 0.0), r))] = False
            changed = True
        if not changed:
            return [r for r in removed if mask[r]]


def _make_plan(groups: Groups, removed: list[int], macs_before: int, macs_after: int, prunable: int) -> Plan:
    removed_set = set(removed)
    mask = np.zeros(len(groups.graph.sets), dtype=bool)
    mask[list(removed_set)] = True
    cuts, widths = [], {}
    for slot, roots in zip(groups.slots, groups.slot_roots):
        keep = np.flatnonzero(~mask[roots])
        if slot.role in WIDTH_ROLES:
            widths[f"{slot.name}:{slot.role}"] = (len(roots), len(keep))
        if len(keep) < len(roots):
            # consumes: a functional conv/linear's input dim, which the proof zeroes
            cuts.append(Cut(slot.name, slot.role, slot.dim, len(roots), tuple(keep.tolist()), bool(slot.consumes)))
    return Plan(
        removed=sorted(removed_set),
        cuts=cuts,
        widths=widths,
        channels_prunable=prunable,
        channels_removed=sum(groups.units[r].size for r in removed_set),
        macs_before=macs_before,
        macs_after=macs_after,
    )


def plan_for_units(groups: Groups, removed: list[int]) -> Plan:
    """A plan removing exactly these units (tests, replays)."""
    model = MacModel(groups)
    mask = np.zeros(len(groups.graph.sets), dtype=bool)
    mask[list(removed)] = True
    prunable = sum(groups.units[r].size for r in groups.prunable_units)
    return _make_plan(groups, list(removed), model.macs(np.zeros_like(mask)), model.macs(mask), prunable)


def select_widths(groups: Groups, scores: dict[int, float], widths: dict[str, int]) -> Plan:
    """A plan that brings each width slot named in ``widths`` ("layer:role" -> width) down to that width,
    removing the lowest-scored units first (a stage of gradual pruning, ``compress.prune.schedules.gradual``). A unit is
    taken only while every named slot it touches still has room; one that touches no named slot is kept.
    A slot whose units cannot meet its width exactly stays wider (the caller compares the widths)."""
    room = {}
    for i, slot in enumerate(groups.slots):
        key = f"{slot.name}:{slot.role}"
        if key in widths:
            room[i] = max(0, len(slot.ids) - widths[key])
    removed = []
    for root in sorted(groups.prunable_units, key=lambda r: (scores.get(r, 0.0), r)):
        touched = [(i, c) for i, c in groups.units[root].slots if i in room]
        if touched and all(room[i] >= c for i, c in touched):
            for i, c in touched:
                room[i] -= c
            removed.append(root)
    return plan_for_units(groups, removed)
