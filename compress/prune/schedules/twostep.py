"""``--schedule twostep``: the cut in two proved stages, half of the way (each slot's width halfway from the
original's to the one-shot plan's) before recovery, the rest at its middle step, re-scored on the student
trained until then; the second half of the run recovers at the final width.

The worked example of a pruning schedule (ARCHITECTURE.md, "To add a pruning schedule"): this file and its line
in ``compress.prune.schedules.SCHEDULES``. It is :class:`~compress.prune.schedules.gradual.Gradual` with other
stages, so the rest comes with it: each cut proved against the zeroed student, the stages composed into one
record of the original that is proved again and reloads like a one-shot folder, the stages in ``summary.json``.
"""

from __future__ import annotations

from compress.prune.schedules.base import Target
from compress.prune.schedules.gradual import Gradual


class TwoStep(Gradual):
    name = "twostep"

    def __init__(self, target: Target):
        super().__init__(target, stages=2)

    def share(self, k: int) -> float:
        return k / 2

    def step(self, k: int, total: int) -> int:
        return (k - 1) * total // 2


SCHEDULE = TwoStep
