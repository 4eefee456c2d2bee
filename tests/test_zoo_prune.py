"""Protection is the exception: `compress prune --ratio 0.4` on real architectures (random weights,
10 classes, 64x64 inputs) must shrink each to at most 0.8x its MACs, and the output must reload."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from tests.cli_helpers import run_cli

pytestmark = pytest.mark.slow

MODELS = ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "densenet121", "regnet_y_400mf", "convnext_tiny"]


@pytest.fixture(scope="module")
def images64(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imgs64")
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize("name", MODELS)
def test_prune_ratio_04_reaches_08_macs_and_reloads(name, images64, tmp_path, capsys):
    import torchvision

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torchvision.models.get_model(name, weights=None, num_classes=10)
    torch.save(model.state_dict(), tmp_path / "ckpt.pt")
    out = tmp_path / "out"
    code, stdout, err = run_cli(["prune", tmp_path / "ckpt.pt", "--arch", f"torchvision:{name}", "--arch-kwargs",
                                 "num_classes=10", "--calib", images64, "--input-size", "64", "--ratio", "0.4",
                                 "--no-recover", "--no-progress", "--json", "-o", out], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["macs_after"] <= 0.8 * summary["macs_before"], (name, summary["macs_after"] / summary["macs_before"])
    code, stdout, err = run_cli(["inspect", out, "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["macs"] == summary["macs_after"]
    print(f"{name}: MACs {summary['macs_before']:,} -> {summary['macs_after']:,} ({summary['macs_after'] / summary['macs_before']:.2f}x)")
