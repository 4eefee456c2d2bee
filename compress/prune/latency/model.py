"""Latency of a pruned network predicted from its kept widths.

``raw(widths)`` sums, over the varying conv/linear layers, the table's time of each layer at its
kept input/output widths (linear interpolation between grid widths; the grid holds the round-to
multiples where kernels change speed). Whole-network latency is then ``a * raw + b``: ``a``
absorbs what layers timed alone do not show (per-call overhead, fused BN/ReLU, cache effects) and
``b`` everything that does not change with pruning (stem, pooling, elementwise ops, the runtime's
per-run cost). Both come from least squares over measured networks (the original and a few
pruned configurations); the error on other, held-out configurations is what a user is shown.

A layer timed alone can save more, or less, than it does inside the network (layout changes,
caches, threads). The in-context width probe (``compress.prune.latency.probe``) measures that per class
of like groups and sets ``slot_scale``: a layer's saving from narrowing a slot counts that many times.
Network points keep their kept widths, so a refit sees the same correction.
"""

from __future__ import annotations

import numpy as np

from compress.prune.latency.table import LatencyTable
from compress.prune.latency.terms import Term


class LatencyModel:
    def __init__(self, terms: list[Term], table: LatencyTable):
        self.terms = terms
        self.table = table
        self.a, self.b = 1.0, 0.0
        self._grids = [self._grid_values(t) for t in terms]
        self.slot_scale: dict[int, float] = {}  # slot -> share of the table's saving that counts (the probe)
        self._full = [self._interp(k, t.spec.n_in, t.spec.n_out) for k, t in enumerate(terms)]
        self.by_slot: dict[int, list[int]] = {}
        for k, t in enumerate(terms):
            for i in {t.i_in, t.i_out}:
                self.by_slot.setdefault(i, []).append(k)

    def _grid_values(self, t: Term):
        if t.spec.grouped:
            return np.array([self.table.lookup(t.spec, i, o) for i, o in t.points()])
        return np.array([[self.table.lookup(t.spec, i, o) for o in t.grid_out] for i in t.grid_in])

    def term_ms(self, k: int, cin: int, cout: int) -> float:
        """The table's time, its saving from the full width scaled per side (input slot, output slot)."""
        t, full = self.terms[k], self._full[k]
        s_in, s_out = self.slot_scale.get(t.i_in, 1.0), self.slot_scale.get(t.i_out, 1.0)
        if t.spec.grouped:  # one width: the input's
            return full + s_in * (self._interp(k, cin, cout) - full)
        if s_in == s_out == 1.0:
            return self._interp(k, cin, cout)
        d_in = self._interp(k, cin, t.spec.n_out) - full
        d_out = self._interp(k, t.spec.n_in, cout) - full
        both = self._interp(k, cin, cout) - full - d_in - d_out
        return full + s_in * d_in + s_out * d_out + float(np.sqrt(s_in * s_out)) * both

    def _interp(self, k: int, cin: int, cout: int) -> float:
        t, values = self.terms[k], self._grids[k]
        if t.spec.grouped:
            return float(np.interp(cin, t.grid_in, values))
        # interpolate along cout for each grid cin, then along cin
        row = [np.interp(cout, t.grid_out, values[i]) for i in range(len(t.grid_in))]
        return float(np.interp(cin, t.grid_in, row))

    def layer_times(self, widths: np.ndarray) -> np.ndarray:
        return np.array([self.term_ms(k, int(widths[t.i_in]), int(widths[t.i_out])) for k, t in enumerate(self.terms)])

    def raw(self, widths: np.ndarray) -> float:
        return float(self.layer_times(widths).sum())

    def predict(self, widths: np.ndarray) -> float:
        return self.from_raw(self.raw(widths))

    def from_raw(self, raw: float) -> float:
        return self.a * raw + self.b

    def point_raw(self, point: dict) -> float:
        """``raw`` of a measured network point (``{"widths": kept width per slot, "ms": …}``)."""
        return self.raw(np.asarray(point["widths"], dtype=np.int64))

    def fit(self, points: list[dict]) -> None:
        """Least squares ``ms ≈ a·raw + b`` (a > 0); one distinct point: scale only."""
        raw = np.array([self.point_raw(p) for p in points], dtype=np.float64)
        ms = np.array([p["ms"] for p in points], dtype=np.float64)
        if len(points) == 0:
            return
        if len(points) == 1 or np.ptp(raw) < 1e-12:
            self.a, self.b = float(ms.mean() / max(raw.mean(), 1e-12)), 0.0
            return
        a, b = np.polyfit(raw, ms, 1)
        if a <= 0:
            a, b = float(ms.mean() / max(raw.mean(), 1e-12)), 0.0
        self.a, self.b = float(a), float(b)

    def errors(self, points: list[dict]) -> list[float]:
        """Relative prediction error of each measured point: |predicted - measured| / measured."""
        return [abs(self.from_raw(self.point_raw(p)) - p["ms"]) / p["ms"] for p in points]
