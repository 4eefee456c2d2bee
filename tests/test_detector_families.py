"""The detector-family protocol (``compress.detection.family``): each family in ``FAMILIES`` is one file with
a ``FAMILY``; a model is a family's when it claims it, and nothing outside the families names one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch
import torch.nn as nn

from compress.detection.family import FAMILIES, Family, family_of, families, names, preset_for_class

ROOT = Path(__file__).resolve().parents[1]


def test_every_registered_family_is_one_file_with_a_family():
    assert len(families()) == len(FAMILIES) and all(isinstance(f, Family) for f in families())
    assert len({f.name for f in families()}) == len(FAMILIES)
    assert all(f.name in names() for f in families())


def test_a_model_is_the_family_that_claims_it():
    from compress.archs.detdigits import detdigitnet

    net = detdigitnet()
    assert family_of(net).postprocess is not None  # the embedded detector decodes itself
    assert family_of(nn.Conv2d(3, 3, 1)) is None
    assert preset_for_class("ultralytics.nn.tasks") == "yolo" and preset_for_class("torchvision.models") is None
    out = net(torch.randn(1, 3, 48, 48))
    dets = family_of(net).postprocess(net, out, (48, 48))
    assert set(dets[0]) == {"boxes", "scores", "labels"}


def test_no_family_is_named_outside_its_file():
    """``grep -rl`` for the Ultralytics family's package in ``compress/``: its file, and two lines that are not
    the family's code (a comment on the op pattern its blocks use, and the CLI's switch for its banner, set
    before any library loads)."""
    found = subprocess.run(["grep", "-rli", "--include=*.py", "ultralytics", "compress"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    assert sorted(found) == ["compress/cli/output.py", "compress/detection/yolo.py", "compress/graph/iterable.py"]
