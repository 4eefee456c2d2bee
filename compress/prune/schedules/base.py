"""What every pruning schedule is given (:class:`Target`) and leaves (:class:`Scheduled`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
import torch.nn as nn

from compress.graph.groups import Groups
from compress.prune.importance import ImportanceConfig
from compress.prune.plan import Plan, PrunePolicy


class Say(Protocol):  # where a schedule's words go (the run's Reporter)
    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...


@dataclass(frozen=True)
class Target:
    original: nn.Module  # the teacher throughout; never modified
    groups: Groups  # its channel groups (compress.prune.phases.channel_groups)
    scores: dict[int, float]  # unit root -> score (compress.prune.phases.score)
    plan: Plan  # the one-shot plan: the widths every schedule ends at
    cut: nn.Module  # the original cut by it and proved (BatchNorm statistics re-estimated where that was kept)
    policy: PrunePolicy
    criterion: ImportanceConfig  # how a schedule that re-scores scores
    images: torch.Tensor  # the importance images
    example: torch.Tensor  # a batch for the proofs
    input_size: tuple[int, ...]  # (C, H, W): MACs
    outputs: Callable | None  # the task's raw outputs to score (Task.importance_outputs)
    say: Say


@dataclass
class Scheduled:
    plan: Plan  # the plan of the original the student is cut by (saved as plan.json, replayed on reload)
    student: nn.Module  # the model recovery returned, cut to the end
    stages: list[dict] | None = None  # the schedule's own record (summary.json: recover_stages); None: none


__all__ = ["Say", "Scheduled", "Target"]
