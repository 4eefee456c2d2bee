"""The embedded demo assets: layout, metadata, reuse and determinism (tiny training budget)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from compress.demo.assets import ARCH, STEPS_PER_SECOND, make_demo_assets, render
from compress.models.loading import load_model


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, make_demo_assets(out, seed=0, train_seconds=0.5)


def test_layout_and_metadata(assets):
    out, a = assets
    meta = json.loads((out / "demo.json").read_text())
    assert a.arch == ARCH == meta["arch"] == "compress.archs.digits:digitnet"
    assert a.checkpoint == out / "checkpoint.pt" and a.checkpoint.is_file()
    assert meta["steps"] == round(0.5 * STEPS_PER_SECOND)
    assert meta["n_eval"] + meta["n_calib"] == 1797
    classes = sorted(p.name for p in a.eval_dir.iterdir())
    assert classes == [str(d) for d in range(10)]
    per_class = [len(list((a.eval_dir / c).glob("*.png"))) for c in classes]
    assert sum(per_class) == meta["n_eval"] and min(per_class) >= 35  # stratified 20 %
    calib = sorted(a.calib_dir.iterdir())
    assert len(calib) == meta["n_calib"] and all(p.suffix == ".png" for p in calib)  # flat, no labels
    from PIL import Image

    with Image.open(calib[0]) as im:
        assert im.size == (32, 32) and im.mode == "RGB"
    assert 0.0 <= meta["eval_accuracy"] <= 1.0 and a.eval_accuracy == meta["eval_accuracy"]


def test_checkpoint_is_a_plain_state_dict_for_the_arch(assets):
    _, a = assets
    assert isinstance(torch.load(a.checkpoint, weights_only=True), dict)
    loaded = load_model(a.checkpoint, arch=a.arch)
    assert loaded.spec.input_size == (3, 32, 32)  # digits' PREPROCESS = "cifar"


def test_reused_when_complete_rebuilt_when_not(assets):
    out, a = assets
    stamp = a.checkpoint.stat().st_mtime_ns
    again = make_demo_assets(out, seed=0, train_seconds=0.5)
    assert again == a and a.checkpoint.stat().st_mtime_ns == stamp
    first_png = sorted(a.calib_dir.iterdir())[0].read_bytes()
    weights = torch.load(a.checkpoint, weights_only=True)
    (out / "demo.json").unlink()  # written last: without it the assets count as incomplete
    rebuilt = make_demo_assets(out, seed=0, train_seconds=0.5)
    assert (out / "demo.json").is_file() and rebuilt.checkpoint.stat().st_mtime_ns != stamp
    assert sorted(rebuilt.calib_dir.iterdir())[0].read_bytes() == first_png  # same seed, same images
    again_weights = torch.load(rebuilt.checkpoint, weights_only=True)
    assert all(torch.allclose(weights[k], again_weights[k], atol=1e-6) for k in weights)  # same training


def test_render_is_deterministic_and_varied():
    digit = np.zeros((8, 8), dtype=np.float32)
    digit[2:6, 3:5] = 1.0
    a = render(digit, np.random.default_rng(3))
    b = render(digit, np.random.default_rng(3))
    c = render(digit, np.random.default_rng(4))
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
