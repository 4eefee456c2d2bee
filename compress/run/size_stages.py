"""The stages of the input-size axis (``compress.run.axes``) and of the free baseline beside every cut (the
original at a smaller input, ``compress.run.resolution``), of the same shape as ``compress.run.stages``' and
named there: ``stage(run: RunContext) -> None``."""

from __future__ import annotations

import dataclasses
import time

from compress import distributed
from compress.errors import UsageError
from compress.prune.schedules import SCHEDULES
from compress.run import axes, resolution
from compress.run.context import RunContext


def choose_size(run: RunContext) -> None:
    """``--axes`` with ``resolution``: the input size and channel cut that meet ``--target-macs`` with the best
    measured held-out agreement with the original at full size (``compress.run.axes``); replaces the plan."""
    config = run.config
    asked = config.axes is not None
    chosen = config.axes if asked else axes.default_axes(config.policy.target_macs)
    if "resolution" not in chosen:
        return
    if not config.policy.target_macs:
        raise UsageError("--axes resolution plans a --target-macs", "give --target-macs, or use --axes width")
    why = (f"a {run.task.name} task's raw outputs are compared per location, which a smaller input changes"
           if run.task.name in ("detect", "raw")
           else f"--schedule {config.schedule} cuts during recovery"
           if config.recover and SCHEDULES[config.schedule].during_recovery else None)
    try:
        if why is not None:
            raise UsageError(f"--axes resolution is not supported here: {why}", "use --axes width")
        best, record = axes.choose(run.loaded.model, run.groups, run.scores, config.policy,
                                   tuple(run.loaded.spec.input_size), chosen, run.task, run.data,
                                   recalibrate=config.recalibrate_bn, device=config.device, say=run.say.info)
    except UsageError as err:
        if chosen == ("resolution",):
            raise
        # the plan already made is today's; a default that does not apply is said, not warned about
        (run.say.warn if asked else run.say.info)(f"{err.message}: planning over width alone")
        return
    record["original_input_size"] = list(run.loaded.spec.input_size)
    run.plan = best.plan
    run.input_size = None if best.size == tuple(run.loaded.spec.input_size[1:]) else best.size
    run.axes = record
    h, w = best.size
    what = "the input size alone (no channel cut)" if not best.plan.cuts else f"{best.plan.channels_removed} channels cut"
    run.say.info(f"axes: chose input {h}x{w} + {what}: {best.macs / max(best.plan.macs_before, 1):.2f}x MACs")


def at_size(run: RunContext) -> None:
    """With a smaller input chosen: the cut model is run (measured, re-estimated, recovered) on the full-size
    images resized down, its masks compared at full size (``resolution.AtSize``), until :func:`restore_size`."""
    if run.input_size is not None:
        run.student = resolution.AtSize(run.student, run.input_size)


def restore_size(run: RunContext) -> None:
    """The chosen size becomes the output's: the bare model, the spec's input size and preprocessing (what
    reload, export, INT8 calibration and bench read), the run's images at that size, the summary's record."""
    if run.axes is not None:
        run.summary.task_figures["axes"] = run.axes
    if run.input_size is None:
        return
    size = run.input_size
    if run.config.bench:
        run.say.warn(f"--bench times the original at the chosen {size[0]}x{size[1]} input too (one input shape per "
                     "bench): its latency rows compare the channel cut alone, the MACs row the whole saving")
    run.student = run.student.model
    run.loaded = dataclasses.replace(run.loaded, spec=axes.resized_spec(run.loaded.spec, size))
    run.summary.input_size = list(run.loaded.spec.input_size)
    run.data = dataclasses.replace(run.data, **{name: resolution.resize_images(getattr(run.data, name), size)
                                               for name in ("importance", "distill", "holdout")})
    if isinstance(run.evaluation, tuple) and run.task.name == "classify":
        run.evaluation = (resolution.resize(run.evaluation[0], size), run.evaluation[1])


def smaller_input(run: RunContext) -> None:
    """The free alternative, always measured: the original at the input size whose MACs are closest to the
    written model's (``compress.run.resolution``), against itself at full size; with ``--eval`` its metric."""
    loaded, summary = run.loaded, run.summary
    if not loaded.spec.input_size or not distributed.is_main():
        return
    started = time.perf_counter()
    small = resolution.figures(loaded.model, tuple(loaded.spec.input_size), summary.macs_after, run.task,
                               run.data.holdout, evaluation=run.evaluation, preprocess=loaded.preprocess(),
                               device=run.config.device)
    summary.task_figures[resolution.KEY] = small
    if "skipped" in small:
        run.say.info(f"smaller input: not measured ({small['skipped']})")
    else:
        run.say.info(f"smaller input: the original at {'x'.join(map(str, small['input_size'][1:]))} "
                     f"({small['macs_ratio']:.2f}x MACs) measured in {time.perf_counter() - started:.1f} s")
