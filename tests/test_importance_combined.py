"""``taylor-l1``: taylor-sq times the squared relative filter L1, checked against a hand computation."""

from __future__ import annotations

import numpy as np
import torch

from compress.prune.importance import ImportanceConfig, estimate
from tests.graph.helpers import groups_of
from tests.toy_models import build


def test_taylor_l1_is_taylor_sq_weighted_by_relative_filter_magnitude():
    model, _ = build("chain")
    images = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    groups = groups_of(model, images[:2])
    run = lambda name: estimate(model, groups, images, ImportanceConfig(name=name, batch_size=4, progress=False,
                                                                        device="cpu")).id_scores
    sq, combined = run("taylor-sq"), run("taylor-l1")
    slot = next(s for s in groups.slots if s.name == "b.0" and s.role == "out")
    w = model.b[0].weight.detach().abs().flatten(1).sum(1).double().numpy()
    ids = np.asarray(slot.ids).ravel()
    np.testing.assert_allclose(combined[ids], sq[ids] * (w / w.mean()) ** 2, rtol=1e-9)
    # the layer's order follows both: the weakest filter of a strong Taylor channel can drop below it
    assert not np.array_equal(np.argsort(combined[ids]), np.argsort(sq[ids]))
    # taylor-sq itself is unchanged by the new criterion's existence (same seed, same numbers)
    np.testing.assert_allclose(run("taylor-sq"), sq, rtol=0, equal_nan=True)
