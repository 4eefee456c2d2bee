"""Split one folder of unlabeled images into importance / distillation / held-out sets."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import CalibrationError


@dataclass
class CalibrationSplit:
    """Which images each stage uses; every list is sorted.

    ``importance`` is a subset of ``distill`` (the method scores channels and recovers accuracy
    on the same unlabeled images); ``holdout`` is disjoint from both unless ``holdout_reused``.
    """

    importance: list[Path]
    distill: list[Path]
    holdout: list[Path]
    holdout_reused: bool = False  # True only for a single image, used for all three

    def to_dict(self) -> dict[str, int | bool]:
        return {"importance": len(self.importance), "distill": len(self.distill),
                "holdout": len(self.holdout), "holdout_reused": self.holdout_reused}


def split_images(paths: Sequence[str | Path], *, seed: int = 0, holdout_fraction: float = 0.1,
                 max_holdout: int = 500, min_holdout: int = 1,
                 importance_max: int | None = None) -> CalibrationSplit:
    """A deterministic split of ``paths`` for the seed (the input order does not matter).

    The paths are sorted, shuffled with ``random.Random(seed)``; the first
    ``clamp(round(n * holdout_fraction), min_holdout, max_holdout)`` go to ``holdout`` (always
    leaving at least one image for the rest), the others to ``distill``. ``importance`` is the
    first ``importance_max`` of those in shuffled order, i.e. a seeded random subset.

    With a single image there is nothing to hold out: it is used for all three sets and
    ``holdout_reused`` is set, so a caller can say that the held-out check is not independent
    instead of failing on a one-image smoke test.
    """
    if not 0.0 <= holdout_fraction < 1.0:
        raise CalibrationError(f"holdout fraction must be in [0, 1), got {holdout_fraction}")
    if min_holdout < 0 or max_holdout < min_holdout:
        raise CalibrationError(f"bad holdout bounds: min {min_holdout}, max {max_holdout}")
    if importance_max is not None and importance_max < 1:
        raise CalibrationError(f"importance_max must be at least 1, got {importance_max}")
    unique = sorted({Path(p) for p in paths})
    if not unique:
        raise CalibrationError("no calibration images to split", "pass a folder with at least one image")
    if len(unique) == 1:
        return CalibrationSplit(importance=list(unique), distill=list(unique), holdout=list(unique), holdout_reused=True)

    n = len(unique)
    order = list(unique)
    random.Random(seed).shuffle(order)
    n_hold = min(max(int(round(n * holdout_fraction)), min_holdout), max_holdout, n - 1)
    holdout, rest = order[:n_hold], order[n_hold:]
    importance = rest if importance_max is None else rest[:importance_max]
    return CalibrationSplit(importance=sorted(importance), distill=sorted(rest), holdout=sorted(holdout))
