"""The only place the stages are strung together: load -> calibrate -> graph -> importance ->
plan -> surgery (proved) -> recover -> save -> export -> bench. Each stage is one call with
plain data in and out; the CLI only parses options into a :class:`PruneConfig`."""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch.nn as nn

from compress import distributed, stages
from compress.devices import resolve_device
from compress.importance import ImportanceConfig
from compress.latency.config import LatencyConfig
from compress.outputs import default_out
from compress.plan import PrunePolicy
from compress.recover import DistillConfig, amp_dtype
from compress.util.atomic import atomic_dir


@dataclass(frozen=True)
class PruneConfig:
    checkpoint: str
    calib: str
    policy: PrunePolicy
    out: str | None = None
    load: dict[str, Any] = field(default_factory=dict)  # compress.loading.load_model keyword arguments
    importance: ImportanceConfig = ImportanceConfig()
    latency: LatencyConfig = LatencyConfig()  # used with a latency target only
    recover: bool = True
    distill: DistillConfig = DistillConfig()
    recalibrate_bn: bool = True  # without recovery: re-estimate BatchNorm statistics on the calibration images
    task: str = "auto"  # compress.tasks: auto (from the output's structure), classify, segment
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


@dataclass
class PruneResult:
    out: Path
    summary: dict[str, Any]
    model: nn.Module
    widths: list[tuple[str, int, int]]


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


def run_prune(config: PruneConfig, reporter: Reporter | None = None) -> PruneResult:
    """Prune, recover, save (export, bench). Under torchrun every rank runs this; importance and
    distillation are data-parallel, the plan is the same on every rank, rank 0 alone writes."""
    config = _per_rank(config, distributed.setup(config.device))
    main = distributed.is_main()
    say = (reporter or STDERR) if main else QUIET
    out = Path(config.out) if config.out else default_out(config.checkpoint)
    _check_out(out, config)
    if config.recover:  # an impossible precision (fp16 on a CPU, bf16 without native support) fails before any work
        amp_dtype(config.distill, resolve_device(config.device))
    started = time.perf_counter()

    loaded = stages.load(config, say)
    data = stages.calibration(config, loaded, say)
    task = stages.task(config, loaded, data, say)
    groups = stages.graph(loaded, data, config, say)
    scores, importance = stages.importance(loaded, groups, data, config, say, task)
    plan, latency = stages.plan(loaded, groups, scores, config, say)
    student = stages.cut(loaded, plan, data, say)
    summary = stages.measure_pruned(loaded, student, plan, groups, importance, config, data, say)
    summary.update(task=task.name, metric=task.metric)
    if latency is not None:
        summary["latency"] = latency
    evaluation = stages.evaluation(config, loaded, say, task)
    if evaluation is not None:
        summary.update(stages.accuracy(loaded.model, student, evaluation, config, prefix=("before", "pruned"), task=task))
    if config.recover:
        student, recovery = stages.recover(loaded, student, data, config, say, task)
        summary.update(recovery)
        if evaluation is not None:
            summary.update(stages.accuracy(None, student, evaluation, config, prefix=(None, "recovered"), task=task))
    elif config.recalibrate_bn:
        summary.update(stages.recalibrate(loaded, student, data, config, say, task))
        if evaluation is not None and summary["bn_recalibrated"]:
            summary.update(stages.accuracy(None, student, evaluation, config, prefix=(None, "recalibrated"),
                                           task=task))
    summary.update(task.extra_figures(loaded.model, student, data.holdout, loaded.preprocess()))
    summary["seconds_total"] = round(time.perf_counter() - started, 2)
    summary["processes"] = distributed.world()

    if main:
        with atomic_dir(out, overwrite=config.overwrite) as tmp:
            stages.save(tmp, loaded, student, plan, groups, importance, summary, config)
            if config.export:
                summary["export"] = stages.export(tmp, student, data, config, say)
            if config.bench:
                summary["bench"] = stages.bench(tmp, loaded, student, summary, data, config, say)
            stages.write_summary(tmp, summary)
    distributed.barrier()
    widths = [(name, before, after) for name, (before, after) in plan.widths.items()]
    return PruneResult(out=out, summary=summary, model=student, widths=widths)


def _per_rank(config: PruneConfig, device: str) -> PruneConfig:
    """This process's device; progress bars on rank 0 only."""
    if device == config.device and distributed.is_main():
        return config
    progress = config.progress and distributed.is_main()
    return dataclasses.replace(config, device=device, progress=progress,
                               importance=dataclasses.replace(config.importance, device=device, progress=progress))


def _check_out(out: Path, config: PruneConfig) -> None:
    """The output policy (``compress.outputs``): never an input, replaces only an earlier output."""
    from compress.outputs import check_output, input_paths

    resolve_device(config.device)  # a GPU that is not there fails before any work
    check_output(out, overwrite=config.overwrite,
                 inputs=input_paths(checkpoint=config.checkpoint, calib=config.calib, eval=config.eval_dir,
                                    labels=config.labels, arch=config.load.get("arch")))
