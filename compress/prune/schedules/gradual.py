"""Gradual pruning inside the distillation run (``--schedule gradual``).

The one-shot schedule cuts the whole plan at once and spends the budget recovering. The gradual one
reaches the same widths in ``GRADUAL_STAGES`` cuts spread over the first ``GRADUAL_SHARE`` of the run's
steps, the share of the way at stage k of K following a cubic, ``1 - (1 - k/K)^3`` (large cuts first,
while the student is still close to the teacher); the rest of the budget recovers at the final width.
Before each cut the *current* student is traced again and scored by the run's criterion (random-gradient
TaylorFO-sq by default) on the importance images, and the stage's widths are taken from it
(``compress.prune.plan.select_widths``); each cut is proved against the student with the removed channels
zeroed, like the one-shot cut. The teacher is the original throughout.

The target is the one-shot plan's widths (``Target.plan``), so both schedules end at the same
architecture, MACs and parameters. The cut records of all stages compose into one record relative to
the original; at the end that record is checked to be a plan of the original's channel graph
(``plan_for_units`` gives back the same cuts), proved against the zeroed original, and the student's
weights load into the original cut by it, so the saved folder reloads exactly like a one-shot one.

:class:`Gradual` is the ``reshape`` hook of ``compress.recover.distill`` (``compress.recover.reshape``); this
package never imports recover: the run hands the hook over. The schedule writes nothing into the run record but
its own stages (``Scheduled.stages``); the run's stage fills the pruned model's figures from ``Scheduled.plan``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time

import numpy as np
import torch.nn as nn

from compress.artifacts.cuts import Cut
from compress.devices import device_of
from compress.errors import PruneError
from compress.prune.phases import channel_groups, cut_and_prove, score
from compress.prune.plan import importance_kept, plan_for_units, select_widths
from compress.prune.profile import count_macs, count_params
from compress.prune.schedules.base import Scheduled, Target
from compress.prune.surgery import apply_cuts
from compress.prune.verify import max_difference

GRADUAL_STAGES = 4  # cuts to reach the target
GRADUAL_SHARE = 0.5  # the cuts are spread over this share of the run's steps; the rest recovers at the final width


def stage_share(k: int, stages: int) -> float:
    """How much of the way from the original widths to the target stage ``k`` (1..stages) reaches."""
    return 1.0 - (1.0 - k / stages) ** 3


def stage_step(k: int, stages: int, total: int) -> int:
    """The step at which stage ``k`` (1..stages) cuts: the first one before training, the others spread evenly
    over the first ``GRADUAL_SHARE`` of ``total`` steps."""
    return int(round((k - 1) / stages * GRADUAL_SHARE * total))


def stage_widths(widths: dict[str, tuple[int, int]], share: float, round_to: int) -> dict[str, int]:
    """Each width slot's width at ``share`` of the way from ``before`` to ``after``, rounded to the nearest
    multiple of ``round_to`` (halves up; never past either end); slots the target leaves alone keep their width."""
    step = max(1, round_to)
    out = {}
    for key, (before, after) in widths.items():
        w = math.floor((before - share * (before - after)) / step + 0.5 + 1e-9) * step
        out[key] = int(min(before, max(after, w)))
    return out


class Gradual:
    """The stages of one run: the student is the original cut by stage 1 (scored by the run's importance), the
    run calls the object after every step (later stages), :meth:`finish` checks the result and gives the
    cumulative plan. ``stages`` is the record (``summary.json``: recover_stages). A schedule with other stages
    (``compress.prune.schedules.twostep``) changes :meth:`share` and :meth:`step`."""

    name = "gradual"  # its words in the messages

    def __init__(self, target: Target, stages: int = GRADUAL_STAGES):
        self.target, self.count, self.say = target, stages, target.say
        self.widths = dict(target.plan.widths)
        self.example = target.example
        self.shape = tuple(target.input_size)
        self.macs_before = count_macs(target.original, self.shape)
        self.composed: dict[tuple[str, str], Cut] = {}  # (layer, role) -> the cut relative to the original
        self.stages: list[dict] = []
        self.student = copy.deepcopy(target.original)
        apply_cuts(self.student, self._stage(self.student, target.groups, target.scores, 0))

    @property
    def reshape(self) -> Gradual:
        return self

    def share(self, k: int) -> float:
        """How much of the way from the original widths to the target stage ``k`` (1..count) reaches."""
        return stage_share(k, self.count)

    def step(self, k: int, total: int) -> int:
        """The step of ``total`` at which stage ``k`` (1..count) cuts (the first: 0, before training)."""
        return stage_step(k, self.count, total)

    def __call__(self, step: int, total: int, student: nn.Module):
        k = len(self.stages) + 1
        if k > self.count or step < self.step(k, total):
            return None
        cuts = self._stage(student, *self._score(student, k), step)
        return (lambda model: apply_cuts(model, cuts)) if cuts else None  # nothing to cut: the run goes on as it was

    def measured(self, step: int, agreement: float, kl: float) -> None:
        stage = self.stages[-1]
        stage["agreement"] = round(agreement, 5)
        self.say.info(f"{self.name}: stage {stage['stage']}/{self.count} held-out agreement {agreement:.1%}")

    def _score(self, student: nn.Module, k: int):
        """The current student's channel groups and unit scores (the run's criterion and policy)."""
        target = self.target
        groups = channel_groups(student, self.example.to(device_of(student)), target.policy)
        criterion = dataclasses.replace(target.criterion, seed=target.criterion.seed + k, progress=False)
        return groups, score(groups, target.images, criterion, outputs=target.outputs).units

    def _stage(self, student: nn.Module, groups, scores, step: int) -> list[Cut]:
        """Plan, prove and record stage ``len(stages) + 1`` on ``student``; return its cut records."""
        started = time.perf_counter()
        k = len(self.stages) + 1
        share = self.share(k)
        plan = select_widths(groups, scores, stage_widths(self.widths, share, self.target.policy.round_to))
        proved = cut_and_prove(student, plan, self.example.to(device_of(student)))
        cut, diff = proved.model, proved.max_diff
        self._compose(plan.cuts)
        macs, macs0 = count_macs(cut, self.shape), self.macs_before
        self.stages.append({"stage": k, "step": step, "share": round(share, 4), "layers_cut": len(plan.cuts),
                            "macs": macs, "params": count_params(cut), "proof_max_diff": float(f"{diff:.3g}"),
                            "seconds": round(time.perf_counter() - started, 2)})
        self.say.info(f"{self.name}: stage {k}/{self.count} at step {step}: {share:.0%} of the way, "
                          f"{len(plan.cuts)} layer dimensions cut, MACs {macs:,} ({macs / max(macs0, 1):.2f}x of the "
                          f"original); proved against the zeroed student (max diff {diff:.2e})")
        return plan.cuts

    def _compose(self, cuts: list[Cut]) -> None:
        """Fold a stage's cuts (relative to the current student) into the record relative to the original."""
        for c in cuts:
            key = (c.name, c.role)
            prev = self.composed.get(key)
            if prev is None:
                self.composed[key] = c
                continue
            if len(prev.keep) != c.size:
                raise PruneError(f"{self.name} pruning: {c.name} ({c.role}) has {c.size} channels, the record "
                                 f"says {len(prev.keep)}", "this is a bug: please report it; nothing was written")
            self.composed[key] = prev.then(c)

    def finish(self, student: nn.Module, steps: int, agreement_before: float) -> Scheduled:
        """Any stage the run did not reach (stopped early, or too few steps) cut now; then the cumulative record
        checked against the original (see the module's docstring): the plan the run ends with."""
        target, say = self.target, self.say
        self.stages[0].setdefault("agreement", round(agreement_before, 5))  # stage 1 cut before the run's first check
        while len(self.stages) < self.count:
            say.warn(f"{self.name}: stage {len(self.stages) + 1}/{self.count} was not reached in {steps} steps: "
                     "cut after the run, without recovery")
            apply_cuts(student, self._stage(student, *self._score(student, len(self.stages) + 1), steps))
        groups, original = target.groups, target.original
        removed = set()
        for slot, roots in zip(groups.slots, groups.slot_roots):
            c = self.composed.get((slot.name, slot.role))
            if c is not None:
                removed |= {int(r) for r in np.delete(roots, list(c.keep))}
        plan = plan_for_units(groups, sorted(removed))
        if sorted(map(_key, plan.cuts)) != sorted(map(_key, self.composed.values())):
            raise PruneError(f"{self.name} pruning: the stages' cuts do not compose into a plan of the original",
                             "this is a bug: please report it; nothing was written")
        proved = cut_and_prove(original, plan, self.example)
        rebuilt, diff = proved.model, proved.max_diff
        try:
            rebuilt.load_state_dict(student.state_dict())
        except RuntimeError as err:
            raise PruneError(f"{self.name} pruning: the student does not fit the composed record ({str(err).splitlines()[-1]})",
                             "this is a bug: please report it; nothing was written") from err
        student_cpu = copy.deepcopy(student).cpu()
        replay = max_difference(rebuilt, student_cpu, self.example)
        if replay > 1e-6:
            raise PruneError(f"{self.name} pruning: the original cut by the composed record differs from the student "
                             f"(max diff {replay:.3g})", "this is a bug: please report it; nothing was written")
        short = {k: (after, plan.widths[k][1]) for k, (_, after) in target.plan.widths.items()
                 if k in plan.widths and plan.widths[k][1] != after}
        if short:
            say.warn(f"{self.name}: {len(short)} widths differ from the one-shot plan's (target, reached): "
                     f"{dict(list(short.items())[:3])}")
        plan.notes, plan.max_layer_ratio = target.plan.notes, target.plan.max_layer_ratio
        plan.importance_kept = importance_kept(groups, target.scores, plan.removed)
        say.info(f"{self.name}: {self.count} stages compose into {len(plan.cuts)} cuts of the original, proved against "
                 f"the zeroed original (max diff {diff:.2e}); MACs {self.macs_before:,} -> "
                 f"{count_macs(student_cpu, self.shape):,}")
        return Scheduled(plan=plan, student=student, stages=self.stages)


SCHEDULE = Gradual


def _key(cut: Cut) -> tuple:
    return cut.name, cut.role, cut.dim, cut.size, cut.keep
