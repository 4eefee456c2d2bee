"""``--schedule oneshot`` (the default): the whole one-shot cut before recovery, which starts from it."""

from __future__ import annotations

import torch.nn as nn

from compress.prune.schedules.base import Scheduled, Target


class OneShot:
    reshape = None  # nothing is cut during recovery

    def __init__(self, target: Target):
        self.target, self.student = target, target.cut

    def finish(self, student: nn.Module, steps: int, agreement_before: float) -> Scheduled:
        return Scheduled(plan=self.target.plan, student=student)


SCHEDULE = OneShot
