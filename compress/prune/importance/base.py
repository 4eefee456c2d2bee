"""The estimator registry and what every estimator returns."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from compress.devices import device_of
from compress.errors import UsageError
from compress.graph.groups import Groups, per_structure


@dataclass(frozen=True)
class ImportanceConfig:
    name: str = "taylor-sq"
    draws: int = 1  # random-gradient draws per image
    seed: int = 0
    batch_size: int = 64
    device: str = "auto"
    progress: bool = True

    def __post_init__(self):
        if self.name not in ESTIMATORS:
            raise UsageError(f"unknown importance {self.name!r}", f"choose one of {', '.join(ESTIMATORS)}")
        if self.draws < 1 or self.batch_size < 1:
            raise UsageError("--draws and the batch size must be at least 1")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ImportanceResult:
    name: str
    id_scores: np.ndarray  # one score per channel id (NaN where no activation measured it)
    images: int
    seconds: float
    device: str
    details: dict = field(default_factory=dict)


def unit_scores(groups: Groups, result: ImportanceResult) -> dict[int, float]:
    """Sum member scores per prunable unit. A unit no activation measured is never ranked
    first: it gets +inf (kept) rather than a guessed score."""
    scores = np.nan_to_num(result.id_scores, nan=0.0)
    measured = ~np.isnan(result.id_scores)
    totals: dict[int, float] = {}
    seen: dict[int, bool] = {}
    sets = groups.graph.sets
    for i in range(len(scores)):
        root = sets.find(i)
        totals[root] = totals.get(root, 0.0) + float(scores[i])
        seen[root] = seen.get(root, False) or bool(measured[i])
    scores = {r: (totals.get(r, 0.0) if seen.get(r) else float("inf")) for r in groups.prunable_units}
    return per_structure(groups, scores)


Estimator = Callable[..., ImportanceResult]
ESTIMATORS: dict[str, str] = {
    "taylor-sq": "compress.prune.importance.taylor:taylor_sq",
    "taylor-abs": "compress.prune.importance.taylor:taylor_abs",
    "taylor": "compress.prune.importance.taylor:taylor_labelled",
    "taylor-l1": "compress.prune.importance.combined:taylor_l1",
    "l1": "compress.prune.importance.magnitude:l1",
    "random": "compress.prune.importance.magnitude:random_scores",
}


def estimate(model, groups: Groups, images, config: ImportanceConfig, *, labels=None, say=None,
             outputs: Callable | None = None) -> ImportanceResult:
    """Run the named estimator. ``images``: a float tensor (N,3,H,W) or a loader of
    ``(tensor, index)`` batches; ``labels`` only for the labelled ``taylor`` baseline; ``outputs``: the
    model's output -> the tensors to draw random gradients for (a task's ``importance_outputs``; default:
    the output must be one logits tensor). The model may run on ``config.device``; it is back where it
    was when this returns."""
    import importlib

    module, attr = ESTIMATORS[config.name].split(":")
    fn = getattr(importlib.import_module(module), attr)
    home = device_of(model)
    start = time.perf_counter()
    try:
        result = fn(model, groups, images, config, labels=labels, say=say, outputs=outputs)
    finally:
        model.to(home)
    result.seconds = time.perf_counter() - start
    for ids, values in groups.graph.static_scores:  # heads no activation sees: scored by their weights
        for row in np.atleast_2d(ids):
            if np.isnan(result.id_scores[row]).all():
                result.id_scores[row] = 0.0
                np.add.at(result.id_scores, row, values)
    return result
