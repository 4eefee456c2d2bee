"""Pruning schedules: how the plan's cut reaches the model (``--schedule``).

A schedule is one file of this package holding ``SCHEDULE``, a class built from a
:class:`~compress.prune.schedules.base.Target` (the original, its groups and scores, the one-shot plan and its
proved cut) that gives the model recovery starts from (``student``), the hook that cuts it during recovery
(``reshape``, ``compress.recover.reshape``; None: no cut during the run) and, at the end, the plan of the
original the student is cut by and the schedule's own record (``finish``: a ``Scheduled``); plus one line in
:data:`SCHEDULES` below. Nothing else names a schedule: the CLI's choices and help, the config's checks and the
recover stage read them from here. This module imports no torch (``compress --help`` reads it); the schedule's
own file is imported when a run asks for it (:func:`schedule`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    help: str  # the CLI's words for it (compress prune --help)
    # cuts during recovery: needs recovery, starts from the original (no BatchNorm re-estimation of the one-shot
    # cut), and its stage widths change under feature matching's shape pairs (refused with --recover-features)
    during_recovery: bool = False


SCHEDULES = {  # name -> the file compress/prune/schedules/<name>.py
    "oneshot": Entry("the whole cut, then recovery"),
    "gradual": Entry("the same widths reached in 4 proved cuts during the first half of recovery, each re-scored on "
                     "the current student", during_recovery=True),
    "twostep": Entry("half of the way before recovery, the rest at its middle step, re-scored", during_recovery=True),
}


def schedule(name: str):
    """The schedule's class (``SCHEDULE`` of its file): ``schedule(name)(target)`` starts it."""
    return importlib.import_module(f"{__name__}.{name}").SCHEDULE


__all__ = ["Entry", "SCHEDULES", "schedule"]
