"""The pruning core as phases: public functions with typed inputs and outputs, which the run's stages
(``compress.run.stages``), the schedules (``compress.prune.schedules``), the tests and the benchmarks all
call, so that the core can be entered halfway (groups of a model without its run, a plan proved without a
recovery...). Each phase is written once, here:

- :func:`channel_groups`: trace -> analyse -> policy -> the coupled channel groups (``graph.Groups``);
- :func:`score`: the criterion's per-channel scores on images, summed per unit (:class:`Scores`);
- :func:`cut_and_prove`: a copy of the model cut by a plan, proved against the zeroed original (:class:`Proved`);
- :func:`evaluate`: the task's labelled metric of a model on ``--eval`` data, as the run record writes it.

Choosing the plan between ``score`` and ``cut_and_prove`` is ``compress.prune.plan.select`` (a ratio or MAC
target) or ``compress.prune.latency.stage.latency_plan`` (a latency target).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

from compress.graph.analysis import analyze
from compress.graph.groups import Groups, apply_policy, build_groups
from compress.graph.trace import trace
from compress.prune.importance import ImportanceConfig, ImportanceResult, estimate, unit_scores
from compress.prune.plan import Plan, PrunePolicy
from compress.prune.surgery import apply_cuts
from compress.prune.verify import check_cut
from compress.tasks.base import Task
from compress.tasks.evaluate import labelled_metric


def channel_groups(model: nn.Module, example: torch.Tensor, policy: PrunePolicy | None = None) -> Groups:
    """The coupled channel groups of ``model`` traced on ``example`` (a batch on the model's device), with the
    policy's protections applied (``keep``, ``prune_stem``, ``layernorm_widths``; None: the defaults). What the
    graph could not follow is on the result: ``groups.graph.traced.opaque`` (modules traced as leaves) and
    ``groups.graph.unknown_ops`` (ops whose channels are protected)."""
    traced = trace(model, example)
    graph = analyze(traced, layernorm_widths=policy.layernorm_widths if policy is not None else False)
    if policy is None:
        apply_policy(graph)
    else:
        apply_policy(graph, keep=policy.keep, prune_stem=policy.prune_stem)
    return build_groups(graph)


@dataclass(frozen=True)
class Scores:
    units: dict[int, float]  # unit root -> score: what the plan reads (compress.prune.plan.select)
    result: ImportanceResult  # the per-channel scores and how they were measured (images, seconds, device)


def score(groups: Groups, images: torch.Tensor, criterion: ImportanceConfig, *, labels: torch.Tensor | None = None,
          outputs: Callable | None = None, say: Callable[[str], None] | None = None) -> Scores:
    """Score every channel of ``groups`` by ``criterion`` (``--importance``) on ``images``, run through the model
    the groups were traced from (``groups.graph.traced.root``); ``labels`` for the labelled criterion, ``outputs``
    the task's raw outputs to score (``Task.importance_outputs``)."""
    result = estimate(groups.graph.traced.root, groups, images, criterion, labels=labels, say=say, outputs=outputs)
    return Scores(units=unit_scores(groups, result), result=result)


@dataclass(frozen=True)
class Proved:
    model: nn.Module  # the cut copy (in eval mode)
    max_diff: float  # the largest difference from the zeroed original over every output leaf


def cut_and_prove(model: nn.Module, plan: Plan, example: torch.Tensor) -> Proved:
    """A copy of ``model`` cut by ``plan``'s cut records, proved against ``model`` with the removed channels zeroed
    on ``example`` (``compress.prune.verify.check_cut``: raises ``PruneError`` if they differ). ``model`` itself
    is left as it was, its train/eval mode included."""
    pruned = apply_cuts(copy.deepcopy(model), plan.cuts)
    diff = check_cut(model, pruned, plan.cuts, example) if plan.cuts else 0.0
    return Proved(model=pruned, max_diff=diff)


def evaluate(model: nn.Module, data: Any, task: Task, *, device: str | torch.device = "cpu") -> float:
    """The task's labelled metric (top-1, mIoU, mAP) of ``model`` on ``data`` (``Task.labelled``: the ``--eval``
    folder as tensors or a loader), rounded as the run record writes it."""
    return round(labelled_metric(task, model, data, device=device), 5)


__all__ = ["Proved", "Scores", "channel_groups", "cut_and_prove", "evaluate", "score"]
