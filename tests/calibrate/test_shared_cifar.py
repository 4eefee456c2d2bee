"""The real CIFAR-10 folders in ../shared: no skips, right classes, fast enough to preload."""

from __future__ import annotations

import logging

import pytest
import torch

from compress.calibrate import PRESETS, ImageDataset, LabelledFolder, preload, preload_labelled, read_labels_csv, scan_folder

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.mark.shared
def test_cifar_calib_and_eval(cifar, caplog):
    with caplog.at_level(logging.WARNING, logger="compress.calibrate"):
        calib = scan_folder(cifar / "calib")
        assert len(calib.paths) == 2000 and not calib.skipped
        assert calib.paths[0].name == "00000.jpg" and calib.paths[-1].name == "01999.jpg"
        x = preload(ImageDataset(calib.paths, PRESETS["cifar"]))
        assert x.shape == (2000, 3, 32, 32) and torch.isfinite(x).all()
        # normalised pixels of natural images: roughly centred, within the [0, 1] bounds mapped
        assert -2.2 < float(x.min()) and float(x.max()) < 2.7 and abs(float(x.mean())) < 0.5

        labels = read_labels_csv(cifar / "calib_labels.csv", calib.paths)
        assert torch.tensor(labels).bincount().tolist() == [200] * 10

        ev = LabelledFolder(cifar / "eval", PRESETS["cifar"])
        assert ev.classes == CLASSES and len(ev) == 2000
        images, targets = preload_labelled(ev)
        assert images.shape == (2000, 3, 32, 32)
        assert targets.bincount().tolist() == [200] * 10
    assert not caplog.records
