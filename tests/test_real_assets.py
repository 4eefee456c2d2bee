"""The real assets' loaders (benchmarks/real/loaders.py) on whatever benchmarks/real/assets.py has built.

Nothing is downloaded: an asset that is not under $COMPRESS_REAL_ASSETS (default ../real-assets) skips with
the reason. Each present asset must load through compress's own loaders, keep the SHA-256 its asset.json
recorded (files and folders), have disjoint labelled and unlabeled images, and give the model's class count
(a segmenter: per-pixel logits at the input size, masks of its images' sizes holding its classes or 255).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "real"))

import loaders  # noqa: E402


@pytest.mark.parametrize("name", sorted(loaders.ASSETS))
def test_asset_loads(name):
    reason = loaders.missing(name)
    if reason:
        pytest.skip(reason)
    if name == "yolo":
        pytest.importorskip("ultralytics", reason="the YOLO asset needs the compress[yolo] extra")
    loaders.check_recorded(name)
    model, preprocess, labelled, calib = loaders.load(name)
    spec = loaders.ASSETS[name]
    if spec.task == "detect":
        eval_names = {Path(item.image).name for item in labelled}
    elif spec.task == "segment":
        eval_names = {image.name for image, _ in labelled}
    else:
        eval_names = {Path(item).name for item in labelled.paths}
    assert eval_names and calib
    assert not eval_names & {p.name for p in calib}, "labelled and unlabeled images overlap"
    x = torch.zeros(1, 3, *preprocess.input_size)
    with torch.no_grad():
        out = model(x)
    if spec.task == "detect":
        assert out["cls_logits"].shape[-1] == spec.classes
        assert all(0 <= c < spec.classes for item in labelled for c in item.labels)
    elif spec.task == "segment":
        assert out.shape == (1, spec.classes, *preprocess.input_size)
        for image, mask in labelled[::25]:  # class indices below the model's classes, or 255 (ignored)
            with Image.open(mask) as m, Image.open(image) as im:
                assert m.size == im.size
                values = set(np.unique(np.asarray(m)).tolist())
            assert values and all(v < spec.classes or v == 255 for v in values), (mask, values)
    else:
        assert out.shape == (1, spec.classes)
        assert len(labelled.classes) == spec.classes and max(labelled.targets) < spec.classes


@pytest.mark.parametrize("name", sorted(loaders.ASSETS))
def test_missing_asset_is_reported(tmp_path, name):
    assert "not built" in loaders.missing(name, tmp_path)
    assert f"--only {name}" in loaders.missing(name, tmp_path)
