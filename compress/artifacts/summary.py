"""The run record of ``compress prune``: :class:`RunSummary`, written as ``summary.json``.

The file is flat (one key per figure, the keys every earlier version wrote, in the same order);
the class groups them:

- the pruned model's figures (``measure_pruned``): plain fields, JSON key = field name;
- ``labelled``: the task's labelled metric per model, ``{"before", "pruned", "recovered",
  "recalibrated"} -> value``, written as ``{metric}_{model}`` (``top1_before``, ``miou_recovered``);
- ``recalibration`` (:class:`Recalibration`, BatchNorm re-estimation of the cut model) and ``recovery``
  (:class:`Recovery`, distillation, which starts from the re-estimated model where that was kept): sections
  whose fields are their JSON keys (``agreement_pruned``/``kl_pruned``, in both, are the one-shot cut's);
- ``repair`` (:class:`Repair`, the least-squares repair after re-estimation, ``repair_*`` keys,
  ``top1_repaired``; recovery starts from the repaired model where it was kept), written only where it ran;
- ``task_figures``: what a task adds beyond the agreement meter (``Task.extra_figures``: detection's
  ``map50_vs_original``...). A new task's figures go here, with no change to this file;
- the run's time and processes, then the ``export`` and ``bench`` records when they were made.

``RunSummary.from_json(summary.to_json())`` is the same summary; a key :meth:`from_json` does not
know lands in ``task_figures``, so nothing of a file is lost on reading. The ``latency``, ``export`` and
``bench`` records are ``compress.export.records``' typed records, written with their ``to_json()``;
``compress.export`` takes plain dicts, never this class.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from compress.export.records import BenchRecord, ExportRecord, LatencyRecord

MODELS = ("before", "pruned", "recovered", "recalibrated", "repaired")  # whose labelled metric a run measures
_FIRST = ("before", "pruned")  # written after the model's figures; the others after their section
OMIT_NONE = {"omit_none": True}  # metadata: a field written only when it has a value
_RECORDS = {"latency": LatencyRecord, "export": ExportRecord, "bench": BenchRecord}  # written with their to_json()


@dataclass
class Recovery:
    """Self-distillation figures (``compress.recover``), held-out agreement and KL before and after."""

    agreement_pruned: float
    agreement_recovered: float
    kl_pruned: float
    kl_recovered: float
    recover_seconds: float
    recover_steps: int
    recover_epochs: float
    recover_planned_steps: int
    recover_max_minutes: float | None
    recover_device: str
    recover_precision: str
    recover_stopped: str | None
    recover_best_step: int
    recover_checks: list[dict[str, Any]]
    # agreement on clean training images (compress.recover.fit_gap): absent when there was no sample
    agreement_train: float | None = field(default=None, metadata=OMIT_NONE)
    kl_train: float | None = field(default=None, metadata=OMIT_NONE)
    agreement_train_images: int | None = field(default=None, metadata=OMIT_NONE)
    recover_images_per_second: float | None = field(default=None, metadata=OMIT_NONE)  # of the step loop
    # --schedule gradual (compress.prune.schedules.gradual): each stage's step, share of the way, MACs, proof, held-out agreement
    recover_schedule: str | None = field(default=None, metadata=OMIT_NONE)
    recover_stages: list[dict[str, Any]] | None = field(default=None, metadata=OMIT_NONE)
    distill: dict[str, Any] = field(default_factory=dict)  # the distillation config used


@dataclass
class Recalibration:
    """BatchNorm re-estimation of the cut model (``compress.recover.batchnorm.recalibrate_if_better``): what
    ``--no-recover`` writes, and where recovery starts."""

    agreement_pruned: float
    kl_pruned: float
    bn_recalibrated: int  # layers whose statistics were kept re-estimated (0: none, or rejected)
    agreement_recalibrated: float | None = field(default=None, metadata=OMIT_NONE)
    kl_recalibrated: float | None = field(default=None, metadata=OMIT_NONE)
    bn_rejected: dict[str, float] | None = field(default=None, metadata=OMIT_NONE)  # figures of the refused statistics
    bn_note: str | None = field(default=None, metadata=OMIT_NONE)
    bn_recalibrate_images: int | None = field(default=None, metadata=OMIT_NONE)


@dataclass
class Repair:
    """The least-squares repair of the cut model (``compress.recover.repair``): held-out agreement with the
    original before (the one-shot cut) and after, kept only where it did not fall."""

    repair_agreement_before: float
    repair_kl_before: float
    repair_kept: bool
    repair_layers: int  # layers refitted and kept (0 where the whole repair was refused)
    repair_refused: int  # layers whose refit was no better on the held-out images
    repair_images: int
    repair_seconds: float
    repair_agreement_after: float | None = field(default=None, metadata=OMIT_NONE)  # of the refitted model
    repair_kl_after: float | None = field(default=None, metadata=OMIT_NONE)
    repair_note: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass
class RunSummary:
    """One run of ``compress prune``: the figures of ``summary.json``, read by attribute."""

    checkpoint: str
    arch: str | None
    input_size: list[int]
    importance: str
    importance_seconds: float
    importance_images: int
    importance_device: str
    ratio: float | None
    target_macs: float | None
    ratio_removed: float
    channels_prunable: int
    channels_removed: int
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    policy: dict[str, Any]
    max_layer_ratio: float | None
    importance_kept: float | None
    calibration: dict[str, int]
    protected_groups: list[dict[str, Any]]
    widths: dict[str, list[int]]
    notes: list[str]
    task: str = "classify"  # compress.tasks name (runs before tasks existed were classifiers)
    metric: str = "top1"  # the labelled metric's key prefix (top1, miou)
    latency: LatencyRecord | None = field(default=None, metadata=OMIT_NONE)  # the latency target's record
    labelled: dict[str, float] = field(default_factory=dict)  # {model in MODELS: the task's labelled metric}
    recovery: Recovery | None = None
    recalibration: Recalibration | None = None
    repair: Repair | None = field(default=None, metadata=OMIT_NONE)  # written only where the repair ran
    task_figures: dict[str, Any] = field(default_factory=dict)
    seconds_total: float | None = field(default=None, metadata=OMIT_NONE)
    processes: int | None = field(default=None, metadata=OMIT_NONE)
    export: ExportRecord | None = field(default=None, metadata=OMIT_NONE)
    bench: BenchRecord | None = field(default=None, metadata=OMIT_NONE)

    # ---- reading ----

    @property
    def metric_before(self) -> float | None:
        """The original model's labelled metric (``top1_before``, ``miou_before``), or None."""
        return self.labelled.get("before")

    def written_figures(self) -> tuple[float | None, float | None]:
        """(the task's labelled metric, held-out agreement) of the model the run wrote: recovered, else
        repaired (the repair runs after re-estimation), else with re-estimated BatchNorm statistics, else one-shot;
        None where not measured."""
        metric = next((self.labelled[m] for m in ("recovered", "repaired", "recalibrated", "pruned")
                       if self.labelled.get(m) is not None), None)
        rec, cal, rep = self.recovery, self.recalibration, self.repair
        agreements = (rec and rec.agreement_recovered,
                      rep.repair_agreement_after if rep is not None and rep.repair_kept else None,
                      cal and cal.agreement_recalibrated,
                      (rec or cal) and (rec or cal).agreement_pruned, rep and rep.repair_agreement_before)
        return metric, next((a for a in agreements if a is not None), None)

    @property
    def one_shot_agreement(self) -> float | None:
        """Held-out agreement of the pruned model before repair, BatchNorm re-estimation and recovery."""
        section = self.recovery or self.recalibration
        if section is None and self.repair is not None:
            return self.repair.repair_agreement_before
        return None if section is None else section.agreement_pruned

    # ---- summary.json ----

    def to_json(self) -> dict[str, Any]:
        """The flat dict of ``summary.json``, key for key as every earlier version wrote it."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "labelled":
                out.update({f"{self.metric}_{m}": value[m] for m in _FIRST if m in value})
            elif f.name in ("recovery", "recalibration", "repair"):
                if value is not None:
                    out.update(_flat(value))
                    later = {"recovery": "recovered", "recalibration": "recalibrated", "repair": "repaired"}[f.name]
                    if later in self.labelled:
                        out[f"{self.metric}_{later}"] = self.labelled[later]
            elif f.name == "task_figures":
                out.update(value)
            elif not (f.metadata.get("omit_none") and value is None):
                out[f.name] = value.to_json() if f.name in _RECORDS and value is not None else value
        for m in ("recovered", "recalibrated", "repaired"):  # measured without its section: after the figures
            key = f"{self.metric}_{m}"
            if m in self.labelled and key not in out:
                out[key] = self.labelled[m]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSummary:
        """A summary from the dict of a ``summary.json`` (``json.loads`` of it)."""
        rest = dict(data)
        metric = rest.get("metric") or "top1"
        labelled = {m: rest.pop(f"{metric}_{m}") for m in MODELS if f"{metric}_{m}" in rest}
        shared = {k: rest[k] for k in ("agreement_pruned", "kl_pruned") if k in rest}  # the one-shot cut's, in both
        recovery = _section(Recovery, rest) if "recover_steps" in rest else None
        recalibration = _section(Recalibration, {**shared, **rest}, rest) if "bn_recalibrated" in rest else None
        repair = _section(Repair, rest) if "repair_kept" in rest else None
        plain = {f.name: rest.pop(f.name) for f in dataclasses.fields(cls)
                 if f.name not in ("labelled", "recovery", "recalibration", "repair", "task_figures") and f.name in rest}
        plain.update({name: kind.from_json(plain[name]) for name, kind in _RECORDS.items() if plain.get(name) is not None})
        return cls(**plain, labelled=labelled, recovery=recovery, recalibration=recalibration, repair=repair,
                   task_figures=rest)


def _flat(section) -> dict[str, Any]:
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section)
            if not (f.metadata.get("omit_none") and getattr(section, f.name) is None)}


def _section(kind, fields: dict[str, Any], rest: dict[str, Any] | None = None):
    """``kind`` from its ``fields``, taken out of ``rest`` (default: ``fields`` itself)."""
    rest = fields if rest is None else rest
    names = [f.name for f in dataclasses.fields(kind) if f.name in fields]
    out = kind(**{name: fields[name] for name in names})
    for name in names:
        rest.pop(name, None)
    return out
