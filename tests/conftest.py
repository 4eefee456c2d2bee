from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from compress.archs.digits import digitnet
from tests.distill_data import images, tiny_net


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


@pytest.fixture
def pair():
    """(student, teacher, train images, held-out images): a 6-wide student of a 16-wide teacher with varied top-1."""
    teacher = tiny_net(16, seed=0)
    with torch.no_grad():  # settle the teacher's BN statistics on data like the test images
        for m in teacher.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = None  # one pass = the exact statistics of that batch
        teacher.train()(images(128, seed=9))
        teacher.eval()
        feats = teacher[:-1](images(128, seed=9))  # centre and scale the head: varied top-1 classes
        head = teacher[-1]
        head.weight.mul_(3 / (feats @ head.weight.T).std(0, keepdim=True).T)
        head.bias.copy_(-(feats @ head.weight.T).mean(0))
    student = tiny_net(6, seed=1)
    train, hold = images(192, seed=2), images(96, seed=3)
    with torch.no_grad():
        assert teacher(hold).argmax(1).unique().numel() >= 3  # a non-trivial target
    return student, teacher, train, hold
