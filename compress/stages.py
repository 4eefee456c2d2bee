"""The pipeline's stages, one function each (see ``compress.pipeline.run_prune``)."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compress import artifacts, distributed
from compress.calibrate import read_labels_csv
from compress.calibration import load_calibration
from compress.checks import check_label_classes
from compress.deploy import bench_pair, export_all
from compress.devices import resolve_device
from compress.errors import PruneError, RecoveryError, UsageError
from compress.graph.analysis import analyze
from compress.graph.groups import apply_policy, build_groups
from compress.graph.trace import trace
from compress.importance import estimate, unit_scores
from compress.latency.stage import latency_plan
from compress.loading import load_model
from compress.plan import select
from compress.profile import count_macs, count_params
from compress.recover import (RECALIBRATE_IMAGES, agreement, distill, recalibrate_if_better, significant_gap,
                              train_sample)
from compress.saved import save_pruned
from compress.surgery import apply_cuts
from compress.tasks import default_task, resolve_task
from compress.tasks.evaluate import labelled_metric
from compress.util.atomic import write_text
from compress.verify import check_cut


def load(config, say):
    loaded = load_model(config.checkpoint, on_note=say.info, **config.load)
    if loaded.pruned:
        say.info(f"{config.checkpoint} is already pruned: pruning it again, relative to its current widths")
    say.info(f"model: {type(loaded.model).__name__} from {config.checkpoint} (input {_shape(loaded)})")
    return loaded


def _shape(loaded) -> str:
    return "x".join(str(v) for v in loaded.spec.input_size) if loaded.spec.input_size else "?"


def calibration(config, loaded, say):
    data = load_calibration(config.calib, loaded.preprocess(), seed=config.seed, max_images=config.max_images,
                            importance_max=config.importance_images)
    c = data.counts
    say.info(f"calibration: {c['found']} images in {config.calib} -> importance {c['importance']}, "
             f"distillation {c['distill']}, held out {c['holdout']}")
    return data


def task(config, loaded, data, say):
    """What the model's output is (``--task``, ``auto`` from one forward pass on an example batch)."""
    example = data.example(2)
    was = loaded.model.training
    loaded.model.eval()
    with torch.no_grad():
        output = loaded.model(example)
    loaded.model.train(was)
    chosen, how = resolve_task(getattr(config, "task", "auto"), output, example)
    say.info(f"task: {chosen.name} ({how}); metrics: {chosen.metric_label}, {chosen.agreement_label}")
    return chosen


def graph(loaded, data, config, say):
    traced = trace(loaded.model, data.example(2))
    for name, err in traced.opaque.items():
        say.warn(f"{name} cannot be traced ({err}); its channels are protected")
    channel_graph = analyze(traced, layernorm_widths=config.policy.layernorm_widths)
    apply_policy(channel_graph, keep=config.policy.keep, prune_stem=config.policy.prune_stem)
    groups = build_groups(channel_graph)
    prunable = sum(g.prunable for g in groups.groups)
    say.info(f"graph: {len(groups.groups)} channel groups, {prunable} prunable channels, "
             f"{len(groups.protected_groups())} groups (partly) protected")
    for p in channel_graph.unknown_ops:
        say.warn(f"unknown op {p.op} at {p.layer}: channels through it are protected")
    if not groups.prunable_units:
        raise PruneError("nothing in this model can be pruned soundly", "see `compress inspect` and the protected groups")
    return groups


def importance(loaded, groups, data, config, say, task=None):
    labels = None
    if config.importance.name == "taylor":
        if not config.labels:
            raise UsageError("--importance taylor needs labels", "pass --labels FILE.csv (file,class_index)")
        rows = read_labels_csv(config.labels, data.importance_paths)
        with torch.no_grad():  # a class the model lacks fails here, not deep inside the importance pass
            check_label_classes(config.labels, rows, loaded.model(data.example(1)).shape[-1])
        labels = torch.tensor(rows, dtype=torch.long)
    result = estimate(loaded.model, groups, data.importance, config.importance, labels=labels, say=say.info,
                      outputs=task.importance_outputs if task is not None else None)
    say.info(f"importance: {result.name} over {result.images} images in {result.seconds:.1f} s")
    return unit_scores(groups, result), result


def plan(loaded, groups, scores, config, say):
    """The plan, and the latency record when the target is a latency (else None)."""
    latency = None
    if config.policy.latency_target:
        if distributed.is_main():  # one process times; under torchrun the others take its plan
            plan, latency = latency_plan(loaded.model, groups, scores, config.policy, config.latency,
                                         loaded.spec.input_size, say, progress=config.progress)
        plan, latency = distributed.broadcast((plan, latency) if distributed.is_main() else None)
    else:
        plan = select(groups, scores, config.policy)
    for note in plan.notes:
        say.warn(note)
    say.info(f"plan: remove {plan.channels_removed} of {plan.channels_prunable} prunable channels "
             f"({plan.ratio_removed:.1%}); MACs {plan.macs_before:,} -> {plan.macs_after:,} "
             f"({plan.macs_after / max(plan.macs_before, 1):.2f}x)")
    return plan, latency


def cut(loaded, plan, data, say):
    student = apply_cuts(copy.deepcopy(loaded.model), plan.cuts)
    diff = check_cut(loaded.model, student, plan.cuts, data.example(4))
    say.info(f"surgery: {len(plan.cuts)} layer dimensions cut; proved against the zeroed original (max diff {diff:.2e})")
    return student


def measure_pruned(loaded, student, plan, groups, importance, config, data, say) -> dict[str, Any]:
    shape = tuple(loaded.spec.input_size)
    return {
        "checkpoint": str(Path(config.checkpoint).resolve()),
        "arch": loaded.spec.arch,
        "input_size": list(shape),
        "importance": importance.name,
        "importance_seconds": round(importance.seconds, 2),
        "importance_images": importance.images,
        "importance_device": importance.device,
        "ratio": config.policy.ratio,
        "target_macs": config.policy.target_macs,
        "ratio_removed": round(plan.ratio_removed, 4),
        "channels_prunable": plan.channels_prunable,
        "channels_removed": plan.channels_removed,
        "params_before": count_params(loaded.model),
        "params_after": count_params(student),
        "macs_before": count_macs(loaded.model, shape),
        "macs_after": count_macs(student, shape),
        "policy": config.policy.to_dict(),
        "max_layer_ratio": plan.max_layer_ratio,
        "importance_kept": None if plan.importance_kept is None else round(plan.importance_kept, 4),
        "calibration": data.counts,
        "protected_groups": [g.to_dict() for g in groups.protected_groups()],
        "widths": {k: list(v) for k, v in plan.widths.items() if v[0] != v[1]},
        "notes": plan.notes,
    }


def evaluation(config, loaded, say, task=None):
    """The ``--eval`` data in the task's layout (ImageFolder for a classifier, images/ + masks/ for a segmenter)."""
    if not config.eval_dir:
        return None
    task = task or default_task()
    data = task.labelled(config.eval_dir, loaded.preprocess())
    n = len(data[0]) if isinstance(data, tuple) else len(data.dataset)  # tensors, or a streaming loader
    say.info(f"evaluation: {n} labelled images from {config.eval_dir} ({task.metric_label})")
    return data


def accuracy(original, student, evaluation, config, *, prefix, task=None) -> dict[str, float]:
    """The task's labelled metric (``top1_*``, ``miou_*``) of each model that has a name in ``prefix``."""
    task = task or default_task()
    out = {}
    for model, name in ((original, prefix[0]), (student, prefix[1])):
        if model is not None and name is not None:
            out[f"{task.metric}_{name}"] = round(labelled_metric(task, model, evaluation, device=config.device), 5)
    return out


def recalibrate(loaded, student, data, config, say, task=None) -> dict[str, Any]:
    """Without recovery: refit the pruned model's BatchNorm statistics (``compress.recover.batchnorm``),
    kept only where held-out agreement does not fall."""
    started = time.perf_counter()
    out = recalibrate_if_better(student, loaded.model, data.distill, data.holdout, held_out=data.counts["holdout"],
                                device=resolve_device(config.device), task=task)
    if "bn_note" in out:
        images = min(RECALIBRATE_IMAGES, data.counts["distill"])
        note = f"batchnorm: {out['bn_note']} ({images} calibration images, {time.perf_counter() - started:.1f} s)"
        (say.info if out["bn_recalibrated"] else say.warn)(note)
        out["bn_recalibrate_images"] = images
    return out


def recover(loaded, student, data, config, say, task=None):
    teacher = loaded.model
    result = distill(student, teacher, data.distill, data.holdout, config.distill, device=config.device,
                     progress=config.progress, task=task)
    if result.stopped and result.steps == 0 and not result.stopped.startswith("interrupted"):
        raise RecoveryError(f"recovery cannot run: {result.stopped} (the original or the pruned model gives inf/NaN "
                            f"on the images of {config.calib})", "check the checkpoint and its preprocessing, try "
                            "--recover-precision fp32, or pass --no-recover")
    if result.stopped:
        say.warn(f"recovery stopped: {result.stopped}; keeping the best weights seen (step {result.best_step})")
    capped = result.steps < result.planned_steps and not result.stopped
    cap = f" (the {result.max_minutes:g}-minute cap: {result.planned_steps} planned)" if capped else ""
    say.info(f"recovery: {result.steps} steps{cap} ({result.epochs:.1f} epochs) in {result.seconds:.0f} s on "
             f"{result.device} ({result.precision}); held-out agreement {result.agreement_before:.1%} -> "
             f"{result.agreement_after:.1%}")
    fit = _fit_on_training_images(result, teacher, data, config, say, task)
    return result.student, {
        "agreement_pruned": round(result.agreement_before, 5),
        "agreement_recovered": round(result.agreement_after, 5),
        "kl_pruned": round(result.kl_before, 5),
        "kl_recovered": round(result.kl_after, 5),
        "recover_seconds": round(result.seconds, 2),
        "recover_steps": result.steps,
        "recover_epochs": round(result.epochs, 2),
        "recover_planned_steps": result.planned_steps,
        "recover_max_minutes": result.max_minutes,
        "recover_device": result.device,
        "recover_precision": result.precision,
        "recover_stopped": result.stopped,
        "recover_best_step": result.best_step,
        "recover_checks": [{"step": h["step"], "agreement": round(h["holdout_agreement"], 5),
                            "kl": round(h["holdout_kl"], 5) if math.isfinite(h["holdout_kl"]) else None}
                           for h in result.history],
        **fit,
        "distill": result.config,
    }


def _fit_on_training_images(result, teacher, data, config, say, task=None) -> dict:
    """The returned student's agreement on clean training images, next to held-out; a hint when it is
    significantly higher (recovery bound by the number of distinct images, see compress.recover.fit_gap)."""
    sample = train_sample(data.distill)
    if sample is None:
        return {}
    agree, kl = agreement(result.student, teacher, sample, device=config.device, task=task)
    n_train, n_held = sample.shape[0], data.counts.get("holdout", 0)
    if significant_gap(agree, n_train, result.agreement_after, n_held):
        say.info(f"recovery: the student agrees with the original on {agree:.1%} of {n_train} training images "
                 f"but {result.agreement_after:.1%} of {n_held} held-out ones: it is bound by the number of "
                 f"distinct images ({data.counts.get('distill', n_train)}); more unlabeled images in --calib "
                 "should help more than a longer schedule")
    return {"agreement_train": round(agree, 5), "kl_train": round(kl, 5), "agreement_train_images": n_train}


def save(folder: Path, loaded, student, plan, groups, importance, summary, config) -> None:
    save_pruned(folder, student, loaded.spec, plan.cuts, extra={
        "original": {"checkpoint": summary["checkpoint"], "params": summary["params_before"],
                     "macs": summary["macs_before"], "size_bytes": loaded.size_bytes},
        "config": _config_dict(config),
    })
    scores = {"estimator": importance.name, "units": _unit_rows(groups, importance)}
    write_text(folder / artifacts.IMPORTANCE, json.dumps(scores))
    write_text(folder / artifacts.PLAN, json.dumps({"removed_units": plan.removed, "cuts": plan.cuts,
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


def export(folder, student, data, config, say):
    return export_all(folder, student, data, config, say)


def bench(folder, loaded, student, summary, data, config, say):
    return bench_pair(folder, loaded, student, summary, data, config, say)


def write_summary(folder: Path, summary: dict) -> None:
    write_text(folder / artifacts.SUMMARY, json.dumps(summary, indent=1, default=str))
