"""Input size as a compression axis (``--axes width,resolution`` with ``--target-macs``).

A MAC target can be met by cutting channels, by running the model at a smaller input, or by both. For each
size of a small grid (:data:`GRID`, sides rounded to the multiple the model allows) this module takes the
channel cut that completes the target at that size (none where the size alone meets it), cuts a copy, re-
estimates its BatchNorm statistics at that size on a few calibration images (as the run's own re-estimation
would) and measures its label-free agreement with the original **at full size** on the held-out images
(``compress.run.resolution.AtSize``: images resized down, masks upsampled back). The candidate that agrees
most is chosen; nothing is assumed about which axis is better. A resolution-only answer is a legitimate
output. ``--ratio`` stays a pure channel cut; ``--axes width`` (the default) is today's plan exactly.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable

import torch.nn as nn

from compress.devices import resolve_device
from compress.errors import UsageError
from compress.prune.plan import Plan, plan_for_units, select
from compress.prune.profile import count_macs
from compress.prune.surgery import apply_cuts
from compress.recover import agreement, recalibrate_batchnorm
from compress.run.resolution import MULTIPLES, AtSize, macs_at, size_for

AXES = ("width", "resolution")
DEFAULT_AXES = ("width",)  # without --target-macs; with it, the size axis too (benchmarks/RESULTS.md, "Against the free
# alternative": on the trained MobileNetV2 the chosen size beat every channel-only cut of the same MACs)


def default_axes(target_macs: float | None) -> tuple[str, ...]:
    """What ``--target-macs`` may shrink when ``--axes`` is not given: width and resolution, else width."""
    return AXES if target_macs else DEFAULT_AXES
GRID = (1.0, 0.93, 0.86, 0.79, 0.71)  # sides tried, as a fraction of the original's
PLAN_IMAGES = 64  # calibration images each candidate's BatchNorm statistics are re-estimated on
BATCH = 32


@dataclasses.dataclass(frozen=True)
class Candidate:
    size: tuple[int, int]
    plan: Plan
    macs: int  # of the cut model at ``size``
    agreement: float | None = None

    def to_json(self, full: int) -> dict[str, Any]:
        return {"input_size": list(self.size), "macs": self.macs, "macs_ratio": round(self.macs / max(full, 1), 4),
                "channels_removed": self.plan.channels_removed,
                "agreement": None if self.agreement is None else round(self.agreement, 5)}


def parse_axes(text: str | None) -> tuple[str, ...]:
    names = tuple(a.strip() for a in (text or ",".join(DEFAULT_AXES)).split(",") if a.strip())
    bad = [a for a in names if a not in AXES]
    if bad or not names:
        raise UsageError(f"--axes {text!r}: unknown axis {bad[0] if bad else '(none)'}",
                         f"name one or both of {', '.join(AXES)}, e.g. --axes width,resolution")
    return tuple(a for a in AXES if a in names)


def allowed_multiple(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """8 when the model runs at a size of 8s that is not a size of 16s, else 32 (UsageError: at no smaller size)."""
    c, h, w = input_size
    last = None
    for multiple in MULTIPLES:
        size = size_for(input_size, 0.75, multiple)
        if multiple == 8 and size[0] % 16 == 0:
            size = (max(8, size[0] - 8), size[1])
        try:
            macs_at(model, c, size)
            return multiple
        except UsageError as err:
            last = err
    raise UsageError(f"--axes resolution: the model runs at no input smaller than {h}x{w} ({last.message})",
                     "use --axes width")


def candidates(model: nn.Module, groups, scores, policy, input_size: tuple[int, ...], axes: tuple[str, ...],
               say: Callable[[str], None]) -> tuple[list[Candidate], int]:
    """The grid's candidates for ``policy.target_macs`` (fraction of the original's MACs), and the original's
    MACs. With ``width`` alone: the plan at full size."""
    full = count_macs(model, tuple(input_size))
    target = policy.target_macs * full
    multiple = allowed_multiple(model, input_size)
    seen, out = set(), []
    sizes = [size_for(input_size, s, multiple) for s in GRID]
    if "width" not in axes:  # resolution alone: the largest size that meets the target by itself
        sizes = _sizes_meeting(model, input_size, multiple, target)
    for size in sizes:
        if size in seen:
            continue
        seen.add(size)
        try:
            at_size = macs_at(model, input_size[0], size)
        except UsageError as err:
            say(f"axes: {size[0]}x{size[1]} skipped ({err.message})")
            continue
        if at_size <= target:  # the size alone meets the target: no cut (smaller sizes only lose more)
            out.append(Candidate(size, plan_for_units(groups, []), at_size))
            break
        if "width" in axes:
            plan = select(groups, scores, dataclasses.replace(policy, target_macs=target / at_size))
            out.append(Candidate(size, plan, at_size))  # MACs at this size: measured on the cut model later
    if out and out[-1].plan.cuts:  # no size of the grid meets the target alone: the largest one that does, uncut
        try:
            size = _sizes_meeting(model, input_size, multiple, target)[0]
            out.append(Candidate(size, plan_for_units(groups, []), macs_at(model, input_size[0], size)))
        except UsageError as err:
            say(f"axes: no input size meets the target alone ({err.message})")
    return out, full


def _sizes_meeting(model, input_size, multiple, target) -> list[tuple[int, int]]:
    c, h, _ = input_size
    for k in range(h // multiple, 0, -1):
        size = size_for(input_size, k * multiple / h, multiple)
        try:
            if macs_at(model, c, size) <= target:
                return [size]
        except UsageError:
            continue
    raise UsageError("--axes resolution: no input size meets the MAC target alone", "add the width axis")


def choose(model: nn.Module, groups, scores, policy, input_size: tuple[int, ...], axes: tuple[str, ...], task,
           data, *, recalibrate: bool, device: str, say: Callable[[str], None]) -> tuple[Candidate, dict[str, Any]]:
    """The candidate whose cut model, at its size, agrees most with the original at full size (ties: the
    larger input, then the grid's order), and the record of all (``summary.json``'s ``axes``)."""
    found, full = candidates(model, groups, scores, policy, input_size, axes, say)
    if not found:
        raise UsageError("--axes: no candidate meets the MAC target", "use --axes width")
    judged = []
    for cand in found:
        student = apply_cuts(copy.deepcopy(model), cand.plan.cuts) if cand.plan.cuts else copy.deepcopy(model)
        wrapped = AtSize(student, cand.size)
        macs = count_macs(student, (input_size[0], *cand.size))
        agree = agreement(wrapped, model, data.holdout, device=device, batch_size=BATCH, task=task)[0]
        if recalibrate:  # as the run re-estimates the written model's statistics: the better of the two
            recalibrate_batchnorm(wrapped, data.distill, max_images=PLAN_IMAGES, device=resolve_device(device))
            agree = max(agree, agreement(wrapped, model, data.holdout, device=device, batch_size=BATCH, task=task)[0])
        judged.append(dataclasses.replace(cand, macs=macs, agreement=agree))
        say(f"axes: input {cand.size[0]}x{cand.size[1]} + {cand.plan.channels_removed} channels cut: "
            f"{macs / full:.2f}x MACs, held-out agreement with the original at full size {agree:.1%}")
    best = max(judged, key=lambda c: (round(c.agreement, 6), c.size[0] * c.size[1]))
    record = {"axes": list(axes), "chosen": best.to_json(full), "candidates": [c.to_json(full) for c in judged],
              "resolution_only": not best.plan.cuts, "plan_images": PLAN_IMAGES if recalibrate else 0}
    return best, record


def resized_spec(spec, size: tuple[int, int]):
    """The model spec at the input ``size``: ``input_size`` and the preprocessing's size (its shorter-side resize
    scaled alike)."""
    pre = dict(spec.preprocess or {})
    if pre:
        old = pre.get("input_size") or list(spec.input_size[1:])
        if pre.get("resize"):
            pre["resize"] = int(round(pre["resize"] * size[0] / old[0]))
        pre["input_size"] = list(size)
    return dataclasses.replace(spec, input_size=(int(spec.input_size[0]), *size), preprocess=pre or spec.preprocess)


__all__ = ["AXES", "DEFAULT_AXES", "default_axes", "GRID", "Candidate", "allowed_multiple", "candidates", "choose", "parse_axes",
           "resized_spec"]
