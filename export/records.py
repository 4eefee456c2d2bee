"""The deployment records, typed: what ``compress export`` wrote (:class:`ExportRecord`, ``export.json``), what
``compress prune --bench`` keeps of its benchmark (:class:`BenchRecord`, ``summary.json``'s ``bench``) and what
a latency target measured (:class:`LatencyRecord`, ``summary.json``'s ``latency`` and ``report.json``'s
``latency_target``).

Frozen dataclasses; readers use their attributes. ``to_json()`` gives the dict every earlier version wrote, key
for key and in the same order (``tests/export/test_records.py`` reads files written before the classes
existed), and ``from_json`` reads it back: ``Record.from_json(r.to_json()) == r``. The entries of each format
in an export record are the runtime plugins' own (``Runtime.export``), kept as they wrote them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping


@dataclass(frozen=True)
class ExportImages:
    verify: int  # images each file was verified on
    calibration: int  # images INT8 was calibrated on


@dataclass(frozen=True)
class ExportRecord:
    """``export.json``: the images used, the widths GPU kernels pad, and each format's entry in export order."""

    images: ExportImages
    misaligned_widths: tuple[tuple[str, int], ...]
    formats: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # format -> its plugin's entry
    source: Mapping[str, Any] | None = None  # the weights the files were made from ({"file", "sha256"}), if known

    def entry(self, fmt: str) -> Mapping[str, Any] | None:
        """The entry of format ``fmt`` (None when it was not exported)."""
        return self.formats.get(fmt)

    def to_json(self) -> dict[str, Any]:
        return {"images": {"verify": self.images.verify, "calibration": self.images.calibration},
                "misaligned_widths": [[name, width] for name, width in self.misaligned_widths],
                **({"source": dict(self.source)} if self.source else {}), **self.formats}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExportRecord:
        rest = dict(data)
        images = ExportImages(**rest.pop("images"))
        widths = tuple((str(n), int(w)) for n, w in rest.pop("misaligned_widths", []))
        return cls(images=images, misaligned_widths=widths, source=rest.pop("source", None), formats=rest)


@dataclass(frozen=True)
class BenchRecord:
    """What a prune run keeps of its benchmark: the report's file name, its comparisons and the verdict
    against ``--baseline`` (the report itself is ``report.json``)."""

    report: str
    comparisons: tuple[Mapping[str, Any], ...] = ()
    verdict: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"report": self.report, "comparisons": list(self.comparisons)}
        if self.verdict is not None:
            out["verdict"] = self.verdict
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BenchRecord:
        return cls(report=data["report"], comparisons=tuple(data.get("comparisons", [])), verdict=data.get("verdict"))


@dataclass(frozen=True)
class PredictionError:
    """The latency model's relative error on held-out networks."""

    mean: float
    max: float
    configs: int


@dataclass(frozen=True)
class LatencyFit:
    """``ms = a * table sum + b_ms``, fitted on measured networks."""

    a: float
    b_ms: float


@dataclass(frozen=True)
class LatencyAttempt:
    """One select -> measure round."""

    goal_ms: float
    predicted_ms: float
    measured_ms: float
    original_ms: float
    reached: bool
    max_layer_ratio: float


@dataclass(frozen=True)
class LatencyTableUse:
    """The latency table a run read: where, how big, what it timed now and what it reused."""

    path: str
    entries: int
    measured_now: int
    reused: int


@dataclass(frozen=True)
class LatencyRecord:
    """A latency target (``compress prune --target-latency/--target-speedup``): the target, the prediction, the
    measurement beside the original, and how it was reached."""

    backend: str
    batch: int
    threads: int
    device: str
    target_ms: float
    target_speedup: float | None
    predicted_ms: float
    measured_ms: float
    original_ms: float
    speedup: float
    target_error: float
    importance_kept: float
    prediction_error: PredictionError
    fit: LatencyFit
    attempts: tuple[LatencyAttempt, ...]
    width_probe: Mapping[str, Any]  # compress.prune.latency.probe.WidthProbe.summary()
    table: LatencyTableUse

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("prediction_error", "fit", "table"):
            out[name] = _plain(out[name])
        out["attempts"] = [_plain(a) for a in self.attempts]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LatencyRecord:
        d = dict(data)
        return cls(**{**d, "prediction_error": PredictionError(**d["prediction_error"]), "fit": LatencyFit(**d["fit"]),
                      "attempts": tuple(LatencyAttempt(**a) for a in d["attempts"]),
                      "table": LatencyTableUse(**d["table"])})


def _plain(record) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in fields(record)}
