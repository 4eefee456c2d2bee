"""Latency of a pruned network predicted from its kept widths.

``raw(widths)`` sums, over the varying conv/linear layers, the table's time of each layer at its
kept input/output widths (linear interpolation between grid widths; the grid holds the round-to
multiples where kernels change speed). Whole-network latency is then ``a * raw + b``: ``a``
absorbs what layers timed alone do not show (per-call overhead, fused BN/ReLU, cache effects) and
``b`` everything that does not change with pruning (stem, pooling, elementwise ops, the runtime's
per-run cost). Both come from least squares over measured networks (the original and a few
pruned configurations); the error on other, held-out configurations is what a user is shown.
"""

from __future__ import annotations

import numpy as np

from compress.latency.table import LatencyTable
from compress.latency.terms import Term


class LatencyModel:
    def __init__(self, terms: list[Term], table: LatencyTable):
        self.terms = terms
        self.table = table
        self.a, self.b = 1.0, 0.0
        self._grids = [self._grid_values(t) for t in terms]
        self.by_slot: dict[int, list[int]] = {}
        for k, t in enumerate(terms):
            for i in {t.i_in, t.i_out}:
                self.by_slot.setdefault(i, []).append(k)

    def _grid_values(self, t: Term):
        if t.spec.grouped:
            return np.array([self.table.lookup(t.spec, i, o) for i, o in t.points()])
        return np.array([[self.table.lookup(t.spec, i, o) for o in t.grid_out] for i in t.grid_in])

    def term_ms(self, k: int, cin: int, cout: int) -> float:
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

    def fit(self, points: list[dict]) -> None:
        """Least squares ``ms ≈ a·raw + b`` (a > 0); one distinct point: scale only."""
        raw = np.array([p["raw"] for p in points], dtype=np.float64)
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
        return [abs(self.from_raw(p["raw"]) - p["ms"]) / p["ms"] for p in points]
