"""Soundness over real architectures (random weights, small inputs): no crash, no unsound cut."""

from __future__ import annotations

import pytest

from tests.zoo import TORCHVISION, zoo_row

pytestmark = pytest.mark.slow

# models whose protection is expected and explained (none since channel shuffle views follow a cut)
PARTLY_PROTECTED: set[str] = set()


@pytest.mark.parametrize("name", ["cifar_resnet20", *sorted(TORCHVISION)])
def test_zoo_model_cut_is_sound(name):
    row = zoo_row(name)
    assert row.max_diff <= 1e-4, f"{name}: relative max diff {row.max_diff}"
    assert row.removable > 0
    assert row.macs_after < row.macs_before
    if name not in PARTLY_PROTECTED and name != "cifar_resnet20" and name != "convnext_tiny":
        assert row.reasons == "", f"{name}: unexpected protection: {row.reasons}"
