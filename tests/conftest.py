from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from compress.archs.digits import digitnet


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory):
    """A random-weight DigitNet checkpoint, 40 unlabeled and 12 labelled 32x32 images."""
    root = tmp_path_factory.mktemp("assets")
    torch.manual_seed(0)
    model = digitnet()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
    torch.save(model.state_dict(), root / "ckpt.pt")
    rng = np.random.default_rng(0)
    calib = root / "calib"
    calib.mkdir()
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(calib / f"{i:03d}.png")
    evald = root / "eval"
    for c in range(3):
        (evald / str(c)).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(evald / str(c) / f"{i}.png")
    return root
