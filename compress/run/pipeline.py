"""The only place the stages are strung together: load -> calibrate -> graph -> importance ->
plan -> surgery (proved) -> recover -> save -> export -> bench. Every stage is one call of the same
shape, ``stage(run)`` on the run's :class:`~compress.run.context.RunContext`; the CLI only parses options
into a :class:`PruneConfig`."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch.nn as nn

from compress import distributed
from compress.run import stages
from compress.artifacts.outputs import check_output, default_out, input_paths
from compress.artifacts.summary import RunSummary
from compress.run.context import QUIET, STDERR, Lines, PruneConfig, Reporter, RunContext
from compress.devices import resolve_device
from compress.recover import amp_dtype
from compress.tasks import Task
from compress.util.atomic import atomic_dir

# the stages, in order: what the run measures, then what it writes (inside the output's atomic folder)
MEASURE = (stages.load, stages.baseline, stages.calibration, stages.task, stages.evaluation,  # bad labels fail before the long stages
           stages.graph, stages.importance, stages.plan, stages.cut, stages.measure_pruned, stages.accuracy, stages.recover, stages.recalibrate,
           stages.accuracy_written, stages.task_figures)
WRITE = (stages.save, stages.export, stages.bench, stages.write_summary)


@dataclass
class PruneResult:
    out: Path
    summary: RunSummary  # summary.to_json() is summary.json
    model: nn.Module
    widths: list[tuple[str, int, int]]
    task: Task  # what the model's output means: its display and figures (compress.tasks)


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

    run = RunContext(config=config, say=say)
    for stage in MEASURE:
        stage(run)
    run.summary.seconds_total = round(time.perf_counter() - started, 2)
    run.summary.processes = distributed.world()

    if main:
        with atomic_dir(out, overwrite=config.overwrite) as tmp:
            run.folder = tmp
            for stage in WRITE:
                stage(run)
    distributed.barrier()
    widths = [(name, before, after) for name, (before, after) in run.plan.widths.items()]
    return PruneResult(out=out, summary=run.summary, model=run.student, widths=widths, task=run.task)


def _per_rank(config: PruneConfig, device: str) -> PruneConfig:
    """This process's device; progress bars on rank 0 only."""
    if device == config.device and distributed.is_main():
        return config
    progress = config.progress and distributed.is_main()
    return dataclasses.replace(config, device=device, progress=progress,
                               importance=dataclasses.replace(config.importance, device=device, progress=progress))


def _check_out(out: Path, config: PruneConfig) -> None:
    """The output policy (``compress.artifacts.outputs``): never an input, replaces only an earlier output."""
    resolve_device(config.device)  # a GPU that is not there fails before any work
    check_output(out, overwrite=config.overwrite,
                 inputs=input_paths(checkpoint=config.checkpoint, calib=config.calib, eval=config.eval_dir,
                                    labels=config.labels, arch=config.load.get("arch")))


__all__ = ["Lines", "MEASURE", "PruneConfig", "PruneResult", "QUIET", "Reporter", "STDERR", "WRITE", "run_prune"]
