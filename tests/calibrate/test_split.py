from __future__ import annotations

from pathlib import Path

import pytest

from compress.calibrate.errors import CalibrationError
from compress.calibrate.split import split_images

PATHS = [Path(f"/data/{i:04d}.jpg") for i in range(200)]


def test_split_deterministic_disjoint_and_complete():
    a = split_images(PATHS, seed=1)
    b = split_images(list(reversed(PATHS)), seed=1)  # input order does not matter
    assert a == b
    assert len(a.holdout) == 20 and len(a.distill) == 180
    assert not set(a.holdout) & set(a.distill)
    assert set(a.holdout) | set(a.distill) == set(PATHS)
    assert a.importance == a.distill
    assert a.holdout == sorted(a.holdout) and a.distill == sorted(a.distill)
    assert split_images(PATHS, seed=2).holdout != a.holdout
    assert not a.holdout_reused


def test_holdout_bounds_and_importance_cap():
    capped = split_images(PATHS, holdout_fraction=0.5, max_holdout=30)
    assert len(capped.holdout) == 30 and len(capped.distill) == 170
    floor = split_images(PATHS[:5], holdout_fraction=0.01, min_holdout=2)
    assert len(floor.holdout) == 2
    none = split_images(PATHS[:5], holdout_fraction=0.0, min_holdout=0)
    assert none.holdout == [] and len(none.distill) == 5
    s = split_images(PATHS, seed=4, importance_max=50)
    assert len(s.importance) == 50 and set(s.importance) <= set(s.distill)
    assert s.importance == split_images(PATHS, seed=4, importance_max=50).importance
    assert s.importance != split_images(PATHS, seed=5, importance_max=50).importance
    two = split_images(PATHS[:2], holdout_fraction=0.9, min_holdout=1)
    assert len(two.holdout) == 1 and len(two.distill) == 1  # never leaves the rest empty


def test_single_image_reuses_it():
    s = split_images([PATHS[0]])
    assert s.importance == s.distill == s.holdout == [PATHS[0]]
    assert s.holdout_reused and s.to_dict()["holdout_reused"] is True


def test_split_errors():
    with pytest.raises(CalibrationError, match="no calibration images"):
        split_images([])
    with pytest.raises(CalibrationError):
        split_images(PATHS, holdout_fraction=1.0)
    with pytest.raises(CalibrationError):
        split_images(PATHS, importance_max=0)
