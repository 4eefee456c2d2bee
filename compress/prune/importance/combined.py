"""``taylor-l1``: the random-gradient Taylor score weighted by each filter's relative weight magnitude.

Why (benchmarks/RESULTS.md, "Criterion after recovery"): ``taylor-sq`` ranks channels by how much the
*current* function depends on them, which wins one-shot; L1 keeps the filters with the most weight,
which recover better under distillation. This score asks for both: per channel id,
``taylor_sq * (l1 / mean l1 of its layer) ** 2`` - the square keeps Taylor's units (``taylor_sq`` is a
squared first-order term, L1 a first-power one), so in log space both count alike. A channel of
average magnitude keeps its Taylor score, so each layer's total (and with it the split of a target
across layers) stays close to ``taylor-sq``'s; only the order inside a layer changes. Ids that no
conv or linear produces (a norm-only width) keep their Taylor score. Costs one ``taylor-sq`` pass.

Measured (same section): ahead of ``taylor-sq`` one-shot, behind it after recovery at the default budget on
ResNet-20, so it is an option, not the default.
"""

from __future__ import annotations

import numpy as np

from compress.graph.groups import Groups
from compress.prune.importance.base import ImportanceConfig, ImportanceResult
from compress.prune.importance.taylor import taylor_sq


def relative_magnitude(model, groups: Groups, config: ImportanceConfig) -> np.ndarray:
    """Per channel id: its filter's L1 over the mean filter L1 of the same layer output (averaged over the
    layers an id is coupled through); 1.0 where no conv/linear output carries the id."""
    total = np.zeros(len(groups.graph.sets))
    count = np.zeros(len(groups.graph.sets))
    for slot in groups.slots:
        if slot.role != "out":
            continue
        ids = np.asarray(slot.ids).ravel()
        own = _slot_l1(model, slot)
        if own is None or len(own) != len(ids) or own.mean() <= 0:
            continue
        np.add.at(total, ids, own / own.mean())
        np.add.at(count, ids, 1)
    return np.where(count > 0, total / np.maximum(count, 1), 1.0)


def _slot_l1(model, slot) -> np.ndarray | None:
    import torch.nn as nn

    m = model.get_submodule(slot.name)
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) and not getattr(m, "transposed", False):
        return m.weight.detach().abs().flatten(1).sum(1).double().cpu().numpy()
    if getattr(m, "transposed", False) and m.groups == 1:
        return m.weight.detach().abs().transpose(0, 1).flatten(1).sum(1).double().cpu().numpy()
    return None


def taylor_l1(model, groups: Groups, images, config: ImportanceConfig, *, labels=None, say=None,
              outputs=None) -> ImportanceResult:
    result = taylor_sq(model, groups, images, config, labels=labels, say=say, outputs=outputs)
    weight = relative_magnitude(model, groups, config) ** 2
    return ImportanceResult("taylor-l1", result.id_scores * weight, images=result.images, seconds=0.0,
                            device=result.device, details={"magnitude_weight": "squared relative filter L1"})
