"""Data-free baselines: filter L1 magnitude and random scores."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from compress.graph.groups import Groups
from compress.prune.importance.base import ImportanceConfig, ImportanceResult

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def l1(model, groups: Groups, images, config: ImportanceConfig, **_) -> ImportanceResult:
    """Sum of |w| of each output filter of convs and linears (their ``out`` slots)."""
    scores = np.full(len(groups.graph.sets), np.nan)
    for slot in groups.slots:
        if slot.role != "out":
            continue
        m = model.get_submodule(slot.name)
        if isinstance(m, (*_CONV, nn.Linear)):
            w = m.weight.detach().abs().flatten(1).sum(1)
        elif getattr(m, "transposed", False) and m.groups == 1:
            w = m.weight.detach().abs().transpose(0, 1).flatten(1).sum(1)
        else:
            continue
        values = w.double().cpu().numpy()
        scores[slot.ids] = np.nan_to_num(scores[slot.ids], nan=0.0) + values
    return ImportanceResult("l1", scores, images=0, seconds=0.0, device="cpu")


def random_scores(model, groups: Groups, images, config: ImportanceConfig, **_) -> ImportanceResult:
    """Uniform scores per id, seeded: the baseline every criterion must beat."""
    rng = np.random.default_rng(config.seed)
    return ImportanceResult("random", rng.random(len(groups.graph.sets)), images=0, seconds=0.0, device="cpu")
