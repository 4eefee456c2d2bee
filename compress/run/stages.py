"""The pipeline's stages, one function each, all of one shape: ``stage(run: RunContext) -> None``.

A stage reads what the stages before it left in ``run`` (``compress.run.context.RunContext``) and fills
its own fields; one that does not apply to this run (``accuracy`` without ``--eval``, ``recover``
with ``--no-recover``...) returns without doing anything. ``compress.run.pipeline.run_prune`` runs them
in order; the write stages (``save``, ``export``, ``bench``, ``write_summary``) write into
``run.folder``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from compress import artifacts, distributed
from compress.recover.batchnorm import RECALIBRATE_IMAGES, recalibrate_if_better
from compress.calibrate import read_labels_csv
from compress.calibration import check_enough, warn_shared, load_calibration
from compress.checks import check_label_classes
from compress.run.context import RunContext
from compress.run.deploy import bench_pair, export_all
from compress.run import resolution
from compress.run.size_stages import at_size, choose_size, restore_size, smaller_input  # noqa: F401 (stages)
from compress.run.sibling import baseline_side, load_baseline
from compress.devices import resolve_device
from compress.recover import distill, repair_cut
from compress.errors import PruneError, RecoveryError, UsageError
from compress.recover.fit_gap import fit_on_training_images
from compress.prune.importance import unit_scores
from compress.prune.phases import channel_groups, cut_and_prove, evaluate, score
from compress.prune.schedules import SCHEDULES, schedule
from compress.prune.schedules.base import Target
from compress.prune.latency.stage import latency_plan
from compress.models.loading import load_model
from compress.prune.plan import select
from compress.prune.profile import count_macs, count_params
from compress.artifacts.cuts import cuts_to_json
from compress.artifacts.saved import save_pruned
from compress.artifacts.summary import Recalibration, Recovery, Repair, RunSummary
from compress.tasks import resolve_task
from compress.util.atomic import write_text


def load(run: RunContext) -> None:
    config, say = run.config, run.say
    run.loaded = loaded = load_model(config.checkpoint, on_note=say.info, **config.load)
    if loaded.pruned:
        say.info(f"{config.checkpoint} is already pruned: pruning it again, relative to its current widths")
    say.info(f"model: {type(loaded.model).__name__} from {config.checkpoint} (input {_shape(loaded)})")
    say.info(f"preprocess: {loaded.preprocess().describe()}")  # what a deployment feeds it (spec.preprocess)


def baseline(run: RunContext) -> None:
    """``--baseline`` with ``--bench``: load the off-the-shelf alternative now, so that a bad one fails before any
    long work (``compress.run.sibling``)."""
    config = run.config
    if config.baseline and config.bench and distributed.is_main():
        run.alternative = load_baseline(config.baseline, config.baseline_load, run.loaded, run.say.info)


def _shape(loaded) -> str:
    return "x".join(str(v) for v in loaded.spec.input_size) if loaded.spec.input_size else "?"


def calibration(run: RunContext) -> None:
    config = run.config
    run.data = data = load_calibration(config.calib, run.loaded.preprocess(), seed=config.seed,
                                       max_images=config.max_images, importance_max=config.importance_images)
    check_enough(data, recover=config.recover, source=f"--calib {config.calib}")
    warn_shared(config.calib, config.eval_dir, run.say.warn)
    c = data.counts
    run.say.info(f"calibration: {c['found']} images in {config.calib} -> importance {c['importance']}, "
                 f"distillation {c['distill']}, held out {c['holdout']}")


def task(run: RunContext) -> None:
    """What the model's output is (``--task``, ``auto`` from one forward pass on an example batch)."""
    model, example = run.loaded.model, run.data.example(2)
    was = model.training
    model.eval()
    with torch.no_grad():
        output = model(example)
    model.train(was)
    run.task, how = resolve_task(run.config.task, output, example, run.config.decode)
    run.say.info(f"task: {run.task.name} ({how}); metrics: {run.task.metric_label}, {run.task.agreement_label}")


def graph(run: RunContext) -> None:
    say = run.say
    run.groups = groups = channel_groups(run.loaded.model, run.data.example(2), run.config.policy)
    for name, err in groups.graph.traced.opaque.items():
        say.warn(f"{name} cannot be traced ({err}); its channels are protected")
    prunable = sum(g.prunable for g in groups.groups)
    say.info(f"graph: {len(groups.groups)} channel groups, {prunable} prunable channels, "
             f"{len(groups.protected_groups())} groups (partly) protected")
    for p in groups.graph.unknown_ops:
        say.warn(f"unknown op {p.op} at {p.layer}: channels through it are protected")
    if not groups.prunable_units:
        raise PruneError("nothing in this model can be pruned soundly", "see `compress inspect` and the protected groups")


def importance(run: RunContext) -> None:
    config, data, model = run.config, run.data, run.loaded.model
    labels = None
    if config.importance.name == "taylor":
        if not config.labels:
            raise UsageError("--importance taylor needs labels", "pass --labels FILE.csv (file,class_index)")
        rows = read_labels_csv(config.labels, data.importance_paths)
        with torch.no_grad():  # a class the model lacks fails here, not deep inside the importance pass
            check_label_classes(config.labels, rows, model(data.example(1)).shape[-1])
        labels = torch.tensor(rows, dtype=torch.long)
    scored = score(run.groups, data.importance, config.importance, labels=labels, say=run.say.info,
                   outputs=run.task.importance_outputs)
    result = scored.result
    run.say.info(f"importance: {result.name} over {result.images} images in {result.seconds:.1f} s")
    run.scores, run.importance = scored.units, result


def plan(run: RunContext) -> None:
    """The plan, and the latency record when the target is a latency (else None)."""
    config, say = run.config, run.say
    latency = None
    if config.policy.latency_target:
        if distributed.is_main():  # one process times; under torchrun the others take its plan
            plan, latency = latency_plan(run.loaded.model, run.groups, run.scores, config.policy, config.latency,
                                         run.loaded.spec.input_size, say, progress=config.progress)
        plan, latency = distributed.broadcast((plan, latency) if distributed.is_main() else None)
    else:
        plan = select(run.groups, run.scores, config.policy)
    for note in plan.notes:
        say.warn(note)
    say.info(f"plan: remove {plan.channels_removed} of {plan.channels_prunable} prunable channels "
             f"({plan.ratio_removed:.1%}); MACs {plan.macs_before:,} -> {plan.macs_after:,} "
             f"({plan.macs_after / max(plan.macs_before, 1):.2f}x)")
    run.plan, run.latency = plan, latency


def cut(run: RunContext) -> None:
    proved = cut_and_prove(run.loaded.model, run.plan, run.data.example(4))
    run.student = proved.model
    run.say.info(f"surgery: {len(run.plan.cuts)} layer dimensions cut; proved against the zeroed original "
                 f"(max diff {proved.max_diff:.2e})")


def measure_pruned(run: RunContext) -> None:
    """The run record starts: the pruned model's figures against the original's."""
    loaded, student, plan, importance, policy = run.loaded, run.student, run.plan, run.importance, run.config.policy
    shape = tuple(loaded.spec.input_size)
    run.summary = RunSummary(
        checkpoint=str(Path(run.config.checkpoint).resolve()) if loaded.spec.kind != "memory" else run.config.checkpoint,
        arch=loaded.spec.arch,
        input_size=list(shape),
        importance=importance.name,
        importance_seconds=round(importance.seconds, 2),
        importance_images=importance.images,
        importance_device=importance.device,
        ratio=policy.ratio,
        target_macs=policy.target_macs,
        channels_prunable=plan.channels_prunable,
        params_before=count_params(loaded.model),
        macs_before=count_macs(loaded.model, shape),
        policy=policy.to_dict(),
        max_layer_ratio=plan.max_layer_ratio,
        calibration=run.data.counts,
        protected_groups=[g.to_dict() for g in run.groups.protected_groups()],
        **_cut_figures(plan, student, shape),
        notes=plan.notes,
        task=run.task.name,
        metric=run.task.metric,
        latency=run.latency,
    )


def _cut_figures(plan, student, shape: tuple[int, ...]) -> dict:
    """The run record's figures of the cut (``measure_pruned``; again where the schedule ends on its own plan)."""
    return {"ratio_removed": round(plan.ratio_removed, 4), "channels_removed": plan.channels_removed,
            "params_after": count_params(student), "macs_after": count_macs(student, shape),
            "importance_kept": None if plan.importance_kept is None else round(plan.importance_kept, 4),
            "widths": {k: list(v) for k, v in plan.widths.items() if v[0] != v[1]}}


def evaluation(run: RunContext) -> None:
    """The ``--eval`` data in the task's layout (ImageFolder for a classifier, images/ + masks/ for a
    segmenter); nothing without ``--eval``."""
    config, task = run.config, run.task
    if not config.eval_dir:
        return
    run.evaluation = data = task.labelled(config.eval_dir, run.loaded.preprocess())
    n = len(data[0]) if isinstance(data, tuple) else len(data.dataset)  # tensors, or a streaming loader
    run.say.info(f"evaluation: {n} labelled images from {config.eval_dir} ({task.metric_label})")


def accuracy(run: RunContext) -> None:
    """With ``--eval``: the task's labelled metric of the original and of the one-shot pruned model
    (``RunSummary.labelled``: ``before``, ``pruned``, written as ``top1_*``, ``miou_*``)."""
    if run.evaluation is not None:
        run.summary.labelled.update(before=metric(run, run.loaded.model), pruned=metric(run, run.student))


def recover(run: RunContext) -> None:
    """Self-distillation from the original (unless ``--no-recover``); ``run.student`` becomes the recovered model."""
    config, say, data, teacher = run.config, run.say, run.data, run.loaded.model
    if not config.recover:
        return
    scheduled = schedule(config.schedule)(Target(  # compress.prune.schedules
        original=teacher, groups=run.groups, scores=run.scores, plan=run.plan, cut=run.student, policy=config.policy,
        criterion=config.importance, images=data.importance, example=data.example(4),
        input_size=tuple(run.loaded.spec.input_size), outputs=run.task.importance_outputs, say=say))
    result = distill(scheduled.student, teacher, data.distill, data.holdout, config.distill, device=config.device,
                     progress=config.progress, task=run.task, reshape=scheduled.reshape)
    done = scheduled.finish(result.student, result.steps, result.agreement_before)
    result.student = done.student
    if done.plan is not run.plan:  # the schedule's own plan of the original (gradual: its stages composed)
        run.plan = done.plan
        for key, value in _cut_figures(done.plan, copy.deepcopy(done.student).cpu(), tuple(run.summary.input_size)).items():
            setattr(run.summary, key, value)  # the pruned model's figures: of the plan the run ends with
    if result.stopped and result.steps == 0 and not result.stopped.startswith("interrupted"):
        raise RecoveryError(f"recovery cannot run: {result.stopped} (the original or the pruned model gives inf/NaN "
                            f"on the images of {config.calib})", "check the checkpoint and its preprocessing, try "
                            "--recover-precision fp32, or pass --no-recover")
    if result.stopped:
        say.warn(f"recovery stopped: {result.stopped}; keeping the best weights seen (step {result.best_step})")
    capped = result.steps < result.planned_steps and not result.stopped
    cap = f" (the {result.max_minutes:g}-minute cap: {result.planned_steps} planned)" if capped else ""
    say.info(f"recovery: {result.steps} steps{cap} ({result.epochs:.1f} epochs) in {result.seconds:.0f} s on "
             f"{result.device} ({result.precision}{_rate(result.images_per_second)}); held-out agreement "
             f"{result.agreement_before:.1%} -> {result.agreement_after:.1%}")
    fit = fit_on_training_images(result.student, teacher, data.distill, result.agreement_after, data.counts,
                                 device=config.device, task=run.task, say=say.info)
    run.student = result.student
    cut = run.summary.recalibration  # the one-shot figures; recovery started from re-estimated statistics if kept
    run.summary.recovery = Recovery(
        agreement_pruned=cut.agreement_pruned if cut is not None else round(result.agreement_before, 5),
        agreement_recovered=round(result.agreement_after, 5),
        kl_pruned=cut.kl_pruned if cut is not None else round(result.kl_before, 5),
        kl_recovered=round(result.kl_after, 5),
        recover_seconds=round(result.seconds, 2),
        recover_steps=result.steps,
        recover_epochs=round(result.epochs, 2),
        recover_planned_steps=result.planned_steps,
        recover_max_minutes=result.max_minutes,
        recover_device=result.device,
        recover_precision=result.precision,
        recover_stopped=result.stopped,
        recover_best_step=result.best_step,
        recover_checks=[{"step": h["step"], "agreement": round(h["holdout_agreement"], 5),
                         "kl": round(h["holdout_kl"], 5) if math.isfinite(h["holdout_kl"]) else None,
                         **({"stage": True} if h.get("stage") else {})}
                        for h in result.history],
        recover_schedule=config.schedule if done.stages is not None else None,  # absent: oneshot
        recover_stages=done.stages,
        **fit,
        recover_images_per_second=None if result.images_per_second is None else round(result.images_per_second, 1),
        distill=result.config,
    )


def _rate(images_per_second: float | None) -> str:
    return "" if images_per_second is None else f", {images_per_second:,.0f} images/s"


def recalibrate(run: RunContext) -> None:
    """Unless ``--no-recalibrate-bn``: refit the one-shot model's BatchNorm statistics
    (``compress.recover.batchnorm``), kept only where held-out agreement does not fall. Without recovery that is
    the model written; with it, the one recovery starts from (so recovery that only loses writes this one, not
    the stale one-shot model). The gradual schedule starts from the original and cuts as it goes: nothing here."""
    config, data = run.config, run.data
    if not config.recalibrate_bn or (config.recover and SCHEDULES[config.schedule].during_recovery):
        return
    started = time.perf_counter()
    out = recalibrate_if_better(run.student, run.loaded.model, data.distill, data.holdout,
                                held_out=data.counts["holdout"], device=resolve_device(config.device), task=run.task)
    if "bn_note" in out:
        images = min(RECALIBRATE_IMAGES, data.counts["distill"])
        note = f"batchnorm: {out['bn_note']} ({images} calibration images, {time.perf_counter() - started:.1f} s)"
        (run.say.info if out["bn_recalibrated"] else run.say.warn)(note)
        out["bn_recalibrate_images"] = images
    run.summary.recalibration = Recalibration(**out)
    if out["bn_recalibrated"] and run.evaluation is not None:  # now: recovery goes on from this model in place
        run.summary.labelled["recalibrated"] = metric(run, run.student)


def repair(run: RunContext) -> None:
    """Unless ``--no-repair``: refit the layers the cut disturbed so that the cut model reproduces the original on
    the calibration images (``compress.recover.repair``: least squares, no labels, no training), kept only where
    held-out agreement does not fall. The gradual schedule starts from the original: nothing here."""
    config, data = run.config, run.data
    if not config.repair or (config.recover and SCHEDULES[config.schedule].during_recovery):
        return
    student, distill_images, holdout = run.student, data.distill, data.holdout
    if run.input_size is not None:  # a smaller input chosen (--axes): the layers refit to the original at that size
        if not run.plan.cuts:
            return
        student, distill_images, holdout = (student.model, resolution.resize_images(distill_images, run.input_size),
                                            resolution.resize_images(holdout, run.input_size))
    keep_out = {c.name: c.keep for c in run.plan.cuts if c.role == "out"}
    result = repair_cut(student, run.loaded.model, distill_images, holdout, keep_out=keep_out,
                        device=resolve_device(config.device), task=run.task)
    (run.say.info if result.kept else run.say.warn)(f"repair: {result.note()} ({result.images} calibration "
                                                    f"images, {result.seconds:.1f} s)")
    run.summary.repair = Repair(
        repair_agreement_before=round(result.agreement_before, 5), repair_kl_before=round(result.kl_before, 5),
        repair_kept=result.kept, repair_layers=len(result.layers) if result.kept else 0,
        repair_refused=len(result.refused), repair_images=result.images, repair_seconds=round(result.seconds, 2),
        repair_agreement_after=None if result.agreement_after is None else round(result.agreement_after, 5),
        repair_kl_after=None if result.kl_after is None else round(result.kl_after, 5), repair_note=result.note())
    if result.kept and run.evaluation is not None:
        run.summary.labelled["repaired"] = metric(run, run.student)


def accuracy_written(run: RunContext) -> None:
    """With ``--eval``: the labelled metric of the recovered model (``recovered``; ``recalibrated`` is measured
    where the statistics are re-estimated, before recovery goes on from them)."""
    summary = run.summary
    if run.evaluation is None:
        return
    if summary.recovery is not None:
        summary.labelled["recovered"] = metric(run, run.student)


def metric(run: RunContext, model) -> float:
    """The task's labelled metric of ``model`` on the run's --eval data, as the run record writes it (the
    benchmarks that replay stages call it too)."""
    return evaluate(model, run.evaluation, run.task, device=run.config.device)


def task_figures(run: RunContext) -> None:
    """What the task measures beyond agreement (detection: mAP against the original's boxes)."""
    run.summary.task_figures.update(run.task.extra_figures(run.loaded.model, run.student, run.data.holdout,
                                                           run.loaded.preprocess()))


def save(run: RunContext) -> None:
    """The reloadable model, its importance scores and the plan."""
    folder, loaded, summary, plan = run.folder, run.loaded, run.summary, run.plan
    save_pruned(folder, run.student, loaded.spec, plan.cuts, extra={
        "original": {"checkpoint": summary.checkpoint, "params": summary.params_before,
                     "macs": summary.macs_before, "size_bytes": loaded.size_bytes},
        "config": _config_dict(run.config),
    })
    scores = {"estimator": run.importance.name, "units": _unit_rows(run.groups, run.importance)}
    write_text(folder / artifacts.IMPORTANCE, json.dumps(scores))
    write_text(folder / artifacts.PLAN, json.dumps({"removed_units": plan.removed, "cuts": cuts_to_json(plan.cuts),
                                                 "widths": plan.widths}, default=list))


def _unit_rows(groups, importance) -> list[dict]:
    scores = unit_scores(groups, importance)
    rows = []
    for root, score in sorted(scores.items()):
        members = groups.units[root].slots
        rows.append({"unit": root, "score": None if not np.isfinite(score) else score,
                     "layers": sorted({groups.slots[i].name for i, _ in members})[:4]})
    return rows


def _config_dict(config) -> dict:
    d = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        d[f.name] = v.to_dict() if hasattr(v, "to_dict") else v
    return d


def export(run: RunContext) -> None:
    """``--export``: the formats asked for (``compress.run.deploy.export_all``)."""
    if run.config.export:
        run.summary.export = export_all(run.folder, run.student, run.data, run.config, run.say)


def bench(run: RunContext) -> None:
    """``--bench``: original against compressed (``compress.run.deploy.bench_pair``)."""
    config = run.config
    if not config.bench:
        return
    side = baseline_side(run.alternative, run.loaded.model, run.folder / artifacts.BENCH_DIR,
                         trust=config.baseline_load.get("trust", False), eval_dir=config.eval_dir, task=run.task,
                         say=run.say.info) if run.alternative is not None else None
    run.summary.bench = bench_pair(run.folder, run.loaded, run.student, run.summary, run.data, config, run.say, side,
                                   task=run.task, evaluation=run.evaluation)


def write_summary(run: RunContext) -> None:
    write_text(run.folder / artifacts.SUMMARY, json.dumps(run.summary.to_json(), indent=1, default=str))
