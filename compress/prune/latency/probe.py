"""In-context width probe: which widths make the *network* faster, not just the layer alone.

A layer timed alone can get faster at a width where, inside the network, nothing does. Measured on
this project's 2-core AVX-512 machine with onnxruntime (ResNet-32, batch 1 and 32): stage-3 inner
widths of 56 of 64 channels run exactly as fast as the original network, 48 runs 7 % faster; 24 of
32 and 12 of 16 gain nothing either. The blocked (NCHWc) layout its neighbours share wants multiples
of 16 there, and a layer that leaves it costs layout changes the one-layer timing never sees.

So before selecting, groups of the same shape form a *class* (same owned widths, their channels
consumed at the same resolution, e.g. all inner widths of one ResNet stage), and the network is timed
with every member of a class at each width the search may stop at, interleaved with the original.
A width whose measured saving over the next wider live width is less than ``DEAD_FRACTION`` of what
the table predicts (or negative, where the table predicts none) is *dead*: the search never stops there and goes on to the next width that pays.
Over the live widths, measured saving / predicted saving, relative to that of all classes together,
is the class's *scale*: the latency model counts each layer's table saving that many times
(``LatencyModel.slot_scale``; the refit slope carries what all classes share), so a class whose layers
save less in the network than alone (stage-1 ResNet blocks at batch 32 here: 6 % measured for 7 %
predicted, where stage 3 measures 13.5 % for 11.6 %) ranks accordingly in the search.
Results are kept in the latency table (cached with it).
"""

from __future__ import annotations

import json
from typing import Callable

import numpy as np

from compress.prune.latency.model import LatencyModel
from compress.prune.latency.search import GroupMoves

DEAD_FRACTION = 0.33  # measured gain below this share of the predicted gain: the width is dead
SCALE_RANGE = (0.25, 4.0)  # a class's in-context scale is clipped to this
MAX_NETWORKS = 48  # probe budget; classes with the most members go first
PROBE_SECONDS = 1.0  # interleaved timing per probe network


class WidthProbe:
    """Which (class, width) pairs save nothing in context; ``drop_dead`` removes them from the search."""

    def __init__(self, model: LatencyModel, stored: dict | None = None):
        self.model = model
        self.savings: dict[str, dict[str, float]] = {k: dict(v) for k, v in (stored or {}).items()}
        self.dead: set[tuple[str, tuple[int, ...]]] = set()
        self.scales: dict[str, float] = {}  # class -> measured / predicted saving over its live widths
        self.networks = 0  # probe networks timed by this run

    def key(self, g: GroupMoves) -> str:
        """The class of a group: its owned widths and where (kind, kernel, resolution) they are consumed."""
        consumers = set()
        for i in g.slots:
            for k in self.model.by_slot.get(i, []):
                t = self.model.terms[k]
                if t.i_in == i:
                    spatial = t.spec.in_shape[:-1] if t.spec.kind == "linear" else t.spec.in_shape[1:]
                    consumers.add((t.spec.kind, tuple(t.spec.kernel), tuple(spatial), t.spec.groups > 1))
        return json.dumps([sorted(g.own.values()), sorted(consumers)])

    def classes(self, cands: list[GroupMoves]) -> dict[str, list[GroupMoves]]:
        out: dict[str, list[GroupMoves]] = {}
        for g in cands:
            if g.own:
                out.setdefault(self.key(g), []).append(g)
        return dict(sorted(out.items(), key=lambda kv: -len(kv[1])))

    def pending(self, cands: list[GroupMoves]) -> int:
        """Probe networks ``run`` would time (within the budget)."""
        return min(MAX_NETWORKS, sum(1 for key, members in self.classes(cands).items()
                                     for w in {g.width(j) for g in members for j in range(1, len(g.stops))}
                                     if _name(w) not in self.savings.get(key, {})))

    def run(self, cands: list[GroupMoves], time_pair: Callable[[list[int]], tuple[float, float]],
            on_network: Callable[[], None] | None = None) -> None:
        """Time every class at every width its members can stop at (what is not cached yet).

        ``time_pair(removed)`` -> (original ms, pruned ms), timed interleaved.
        """
        budget = MAX_NETWORKS
        for key, members in self.classes(cands).items():
            done = self.savings.setdefault(key, {})
            for width in sorted({g.width(j) for g in members for j in range(1, len(g.stops))}, reverse=True):
                name = _name(width)
                if name in done:
                    continue
                if budget <= 0:
                    break
                removed = [r for g in members for j in _at(g, width) for r in g.order[:g.stops[j]]]
                full_ms, cut_ms = time_pair(removed)
                done[name] = 1.0 - cut_ms / full_ms
                budget -= 1
                self.networks += 1
                if on_network:
                    on_network()

    def judge(self, cands: list[GroupMoves], widths_of: Callable[[list[int]], np.ndarray]) -> None:
        """Mark dead widths and set the model's per-layer scales, using the model (fitted) for the predicted
        gains; ``widths_of(removed)`` -> kept widths per slot."""
        self.model.slot_scale = {}
        full = self.model.predict(widths_of([]))
        self.dead, self.scales = set(), {}
        ratios: dict[str, tuple[float, float]] = {}
        for key, members in self.classes(cands).items():
            done = self.savings.get(key, {})
            live_measured = live_predicted = 0.0
            sum_measured = sum_predicted = 0.0
            for width in sorted({g.width(j) for g in members for j in range(1, len(g.stops))}, reverse=True):
                if _name(width) not in done:
                    continue
                removed = [r for g in members for j in _at(g, width) for r in g.order[:g.stops[j]]]
                predicted = 1.0 - self.model.predict(widths_of(removed)) / full
                measured = done[_name(width)]
                gain_p, gain_m = predicted - live_predicted, measured - live_measured
                if gain_m < DEAD_FRACTION * max(gain_p, 0.0):  # pays too little, or (nothing predicted) costs
                    self.dead.add((key, width))
                else:
                    live_measured, live_predicted = max(measured, live_measured), max(predicted, live_predicted)
                    sum_measured, sum_predicted = sum_measured + measured, sum_predicted + predicted
            if sum_predicted > 1e-3 and sum_measured > 0:
                ratios[key] = (sum_measured, sum_predicted)
        if ratios:  # relative to all classes together: the refit ``a`` carries what they share
            mean = sum(m for m, _ in ratios.values()) / sum(p for _, p in ratios.values())
            self.scales = {k: float(np.clip(m / p / mean, *SCALE_RANGE)) for k, (m, p) in ratios.items()}
        self._set_scales(cands)

    def _set_scales(self, cands: list[GroupMoves]) -> None:
        """The slots a class owns take its scale."""
        self.model.slot_scale = {}
        for key, members in self.classes(cands).items():
            if key in self.scales:
                self.model.slot_scale.update({i: self.scales[key] for g in members for i in g.own})

    def drop_dead(self, cands: list[GroupMoves]) -> None:
        if not self.dead:
            return
        for g in cands:
            if g.own:
                key = self.key(g)
                g.keep_stops([j for j in range(1, len(g.stops)) if (key, g.width(j)) not in self.dead])

    def labels(self) -> dict[str, str]:
        """Display name of each class: its widths, and where its channels are consumed when two classes share
        widths (``"32 (conv@16x16)"``)."""
        keys = {*self.savings, *self.scales, *(k for k, _ in self.dead)}
        base = {k: _name(tuple(json.loads(k)[0])) for k in keys}
        shared = {b for b in base.values() if list(base.values()).count(b) > 1}
        out = {}
        for k, b in base.items():
            where = sorted({kind + (f"@{'x'.join(map(str, spatial))}" if spatial else "")
                            for kind, _, spatial, _ in json.loads(k)[1]})
            out[k] = f"{b} ({', '.join(where)})" if b in shared else b
        return out

    def summary(self) -> dict:
        label = self.labels()
        return {"classes": len(self.savings), "networks_measured_now": self.networks,
                "dead": sorted({f"{label[k]}->{_name(w)}" for k, w in self.dead}),
                "scales": [[label[k], round(v, 3)] for k, v in self.scales.items()]}

    def lines(self) -> list[str]:
        """One line per class: measured network saving at each probed width, dead ones marked."""
        label, out = self.labels(), []
        for key, done in self.savings.items():
            dead = {_name(w) for k, w in self.dead if k == key}
            cells = [f"{w} {s:+.1%}{' (dead)' if w in dead else ''}"
                     for w, s in sorted(done.items(), key=lambda kv: [-int(v) for v in kv[0].split("x")])]
            scale = f" (in context x{self.scales[key]:.2f} the table's saving)" if key in self.scales else ""
            out.append(f"{label[key]} channels: " + ", ".join(cells) + scale)
        return out


def _name(width: tuple[int, ...]) -> str:
    """``(48, 48)`` -> ``"48"`` (a group's owned slots usually share one width), else ``"48x24"``."""
    return str(width[0]) if len(set(width)) == 1 else "x".join(str(w) for w in width)


def _at(g: GroupMoves, width: tuple[int, ...]) -> list[int]:
    """The stop index at which ``g`` has ``width`` (empty if it never does)."""
    return [j for j in range(len(g.stops)) if g.width(j) == width][:1]
