"""What one run of ``compress prune`` is given and what it has made so far.

:class:`PruneConfig` is what the user asked for (the CLI and the API build it); :class:`RunContext`
carries it through the stages. Every stage of ``compress.run.stages`` has the same shape,
``stage(run: RunContext) -> None``: it reads what earlier stages left in ``run`` and fills its own
fields. :class:`Reporter` is where the words go; the CLI implements it, the core never imports the CLI.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch.nn as nn

from compress.artifacts.summary import RunSummary
from compress.errors import UsageError
from compress.calibration import CalibrationData
from compress.recover import DistillConfig
from compress.graph.groups import Groups
from compress.prune.importance import ImportanceConfig, ImportanceResult
from compress.prune.latency.config import LatencyConfig
from compress.prune.plan import Plan, PrunePolicy
from compress.prune.schedules import SCHEDULES
from compress.spec import LoadedModel
from compress.tasks import Task


@dataclass(frozen=True)
class PruneConfig:
    checkpoint: str
    calib: str
    policy: PrunePolicy
    out: str | None = None
    load: dict[str, Any] = field(default_factory=dict)  # compress.models.loading.load_model keyword arguments
    importance: ImportanceConfig = ImportanceConfig()
    latency: LatencyConfig = LatencyConfig()  # used with a latency target only
    recover: bool = True
    schedule: str = "oneshot"  # compress.prune.schedules.SCHEDULES: the whole cut before recovery, or in stages during it
    distill: DistillConfig = DistillConfig()
    repair: bool = True  # refit the layers the cut disturbed to the original's outputs (compress.recover.repair)
    recalibrate_bn: bool = True  # re-estimate the cut model's BatchNorm statistics (written, or recovered from)
    task: str = "auto"  # compress.tasks: auto (from the output's structure), classify, segment, detect, raw
    decode: str | None = None  # --decode FILE.py:fn, with task raw: a detector of the user's own (detection.user)
    eval_dir: str | None = None
    labels: str | None = None
    max_images: int | None = None
    importance_images: int | None = None
    seed: int = 0
    export: tuple[str, ...] = ()
    int8_method: str = "minmax"
    target: str = "cpu"
    bench: bool = False
    overwrite: bool = False
    device: str = "auto"
    progress: bool = True
    baseline: str | None = None  # --bench: an off-the-shelf alternative benched beside original and compressed
    baseline_load: dict[str, Any] = field(default_factory=dict)  # its load_model keyword arguments
    axes: tuple[str, ...] | None = None  # --axes: what --target-macs may shrink (compress.run.axes): width, resolution; None: run.axes.default_axes

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise UsageError(f"unknown schedule {self.schedule!r}", f"choose one of {', '.join(SCHEDULES)}")
        if SCHEDULES[self.schedule].during_recovery and not self.recover:
            raise UsageError(f"the {self.schedule} schedule cuts during recovery", "use recover=True, or the oneshot schedule")
        if SCHEDULES[self.schedule].during_recovery and self.distill.features > 0:
            raise UsageError(f"the {self.schedule} schedule changes stage widths that feature matching pairs by shape",
                             "drop --recover-features, or use the oneshot schedule")


class Reporter(Protocol):
    """Where the pipeline's words go. The CLI implements it (``compress.cli.output.TERMINAL``);
    :class:`Lines` adapts two callables (tests, quiet API calls)."""

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...


@dataclass(frozen=True)
class Lines:
    """A :class:`Reporter` from two callables."""

    info: Callable[[str], None]
    warn: Callable[[str], None]


QUIET = Lines(info=lambda _m: None, warn=lambda _m: None)
STDERR = Lines(info=lambda m: print(m, file=sys.stderr), warn=lambda m: print(f"warning: {m}", file=sys.stderr))


@dataclass
class RunContext:
    """One run: its config and reporter, then each stage's result, in the order the stages fill them
    (``None`` until then)."""

    config: PruneConfig
    say: Reporter
    loaded: LoadedModel | None = None  # stages.load: the original
    data: CalibrationData | None = None  # stages.calibration
    task: Task | None = None  # stages.task
    groups: Groups | None = None  # stages.graph
    scores: dict[int, float] | None = None  # stages.importance: per prunable unit
    importance: ImportanceResult | None = None  # stages.importance
    plan: Plan | None = None  # stages.plan
    latency: dict[str, Any] | None = None  # stages.plan: the latency target's record, when there is one
    student: nn.Module | None = None  # stages.cut, then recover / recalibrate: the model the run writes
    summary: RunSummary | None = None  # stages.measure_pruned, completed by the stages after it
    evaluation: Any = None  # stages.evaluation: the --eval data in the task's layout, or None
    alternative: LoadedModel | None = None  # stages.baseline: --baseline with --bench (rank 0)
    input_size: tuple[int, int] | None = None  # stages.choose_size: the smaller input chosen (H, W), None: the original's
    axes: dict[str, Any] | None = None  # stages.choose_size: the record of the sizes tried
    folder: Path | None = None  # where the write stages (save, export, bench, write_summary) write
