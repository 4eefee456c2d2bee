"""The only place the stages are strung together: load -> calibrate -> graph -> importance ->
plan -> surgery (proved) -> recover -> save -> export -> bench. Every stage is one call of the same
shape, ``stage(run)`` on the run's :class:`~compress.run.context.RunContext`; the CLI only parses options
into a :class:`PruneConfig`.

:func:`prune_model` is the one in-memory entry point: a module and its calibration images in, the pruned
(and recovered) module and its record out, nothing read or written. :func:`run_prune` (the CLI, the API's
``compress.prune``) loads the checkpoint and the folder (:data:`SOURCE`), runs the same stages
(:data:`IN_MEMORY`) through it, and writes the output folder (:data:`WRITE`)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from compress import distributed
from compress.run import stages
from compress.artifacts.outputs import check_output, default_out, input_paths
from compress.artifacts.summary import RunSummary
from compress.calibrate.preprocess import Preprocess
from compress.calibration import CalibrationData, calibration_from_tensor
from compress.prune.plan import PrunePolicy
from compress.spec import LoadedModel, ModelSpec
from compress.run.context import QUIET, STDERR, Lines, PruneConfig, Reporter, RunContext
from compress.devices import resolve_device
from compress.recover import amp_dtype
from compress.tasks import Task
from compress.util.atomic import atomic_dir

# the stages, in order: what the run reads from disk, what it measures on the model in memory, then what it
# writes (inside the output's atomic folder)
SOURCE = (stages.load, stages.baseline, stages.calibration)
IN_MEMORY = (stages.task, stages.evaluation,  # bad labels fail before the long stages
             stages.graph, stages.importance, stages.plan, stages.choose_size, stages.cut, stages.at_size,
             stages.measure_pruned, stages.accuracy, stages.recalibrate, stages.repair, stages.recover,
             stages.accuracy_written, stages.task_figures, stages.smaller_input, stages.restore_size)
MEASURE = SOURCE + IN_MEMORY
WRITE = (stages.save, stages.export, stages.bench, stages.write_summary)


@dataclass
class PruneResult:
    out: Path | None  # None: pruned in memory (prune_model), nothing written
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
    for stage in SOURCE:
        stage(run)
    result = prune_model(run.loaded.model, run.data, config=config, reporter=say, run=run)
    run.summary.seconds_total = round(time.perf_counter() - started, 2)

    if main:
        with atomic_dir(out, overwrite=config.overwrite) as tmp:
            run.folder = tmp
            for stage in WRITE:
                stage(run)
    distributed.barrier()
    return dataclasses.replace(result, out=out)


def prune_model(module: nn.Module, images: torch.Tensor | CalibrationData, *, config: PruneConfig | None = None,
                preprocess: Preprocess | None = None, reporter: Reporter | None = None,
                run: RunContext | None = None) -> PruneResult:
    """Prune ``module`` (and recover it, as ``config`` says) with importance from ``images``: a float
    (N, C, H, W) tensor already preprocessed for the model, split as a folder's files would be
    (``compress.calibration.calibration_from_tensor``). Nothing is read or written; ``config``'s checkpoint
    and calibration folder only name the run. ``preprocess``: what the images went through (its mean and
    std un-normalise images for a detector's mAP), by default none. ``run``: :func:`run_prune`'s context,
    already loaded."""
    if run is None:
        config = config or PruneConfig(checkpoint="<in memory>", calib="<in memory>", policy=PrunePolicy(ratio=0.5))
        run = RunContext(config=config, say=reporter or QUIET)
        run.data = images if isinstance(images, CalibrationData) else calibration_from_tensor(
            images, seed=config.seed, importance_max=config.importance_images)
        shape = tuple(int(v) for v in run.data.example(1).shape[1:])
        pre = preprocess or Preprocess(input_size=shape[1:], mean=(0.0,) * 3, std=(1.0,) * 3)
        spec = ModelSpec(kind="memory", checkpoint=config.checkpoint, input_size=shape, preprocess=pre.to_dict())
        run.loaded = LoadedModel(model=module.eval(), spec=spec, path=Path(config.checkpoint), size_bytes=0)
    for stage in IN_MEMORY:
        stage(run)
    run.summary.processes = distributed.world()
    widths = [(name, before, after) for name, (before, after) in run.plan.widths.items()]
    return PruneResult(out=None, summary=run.summary, model=run.student, widths=widths, task=run.task)


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


__all__ = ["IN_MEMORY", "Lines", "MEASURE", "PruneConfig", "PruneResult", "QUIET", "Reporter", "SOURCE", "STDERR", "WRITE",
           "prune_model", "run_prune"]
