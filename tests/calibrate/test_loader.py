"""Datasets, seeded loaders and preloading."""

from __future__ import annotations

import logging

import pytest
import torch

from compress.calibrate.errors import CalibrationError
from compress.calibrate.loader import (ImageDataset, LabelledFolder, default_workers, make_loader, preload,
                              preload_labelled)
from compress.calibrate.preprocess import PRESETS, resolve_preprocess

from .images import write_bad_files, write_rgb

CIFAR = PRESETS["cifar"]


@pytest.fixture
def images(tmp_path):
    return [write_rgb(tmp_path / f"{i:02d}.png", (12, 10), seed=i) for i in range(10)]


def test_dataset_items_carry_their_index(images):
    ds = ImageDataset(images, CIFAR)
    assert len(ds) == 10
    x, i = ds[3]
    assert i == 3 and x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert not torch.equal(ds[3][0], ds[4][0])


def test_dataset_reports_a_file_that_broke(images):
    images[2].write_bytes(b"")
    with pytest.raises(CalibrationError, match="02.png"):
        ImageDataset(images, CIFAR)[2]


def test_loader_is_seeded(images):
    ds = ImageDataset(images, CIFAR)

    def order(seed):
        return [i for _, idx in make_loader(ds, batch_size=3, shuffle=True, seed=seed, workers=0) for i in idx.tolist()]

    torch.manual_seed(123)  # the global RNG must not matter
    a = order(7)
    torch.manual_seed(999)
    assert order(7) == a
    assert sorted(a) == list(range(10)) and a != list(range(10))
    assert order(8) != a
    plain = [idx.tolist() for _, idx in make_loader(ds, batch_size=4, workers=0, drop_last=True)]
    assert plain == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(CalibrationError):
        make_loader(ds, batch_size=0)


def test_preload_matches_getitem(images):
    ds = ImageDataset(images, resolve_preprocess(input_size=(8, 6)))
    x = preload(ds, workers=3)
    assert x.shape == (10, 3, 8, 6)
    torch.testing.assert_close(x, torch.stack([ds[i][0] for i in range(len(ds))]), rtol=0, atol=0)
    assert preload(ds, max_bytes=10 * 3 * 8 * 6 * 4 - 1) is None
    assert preload(ds, max_bytes=10 * 3 * 8 * 6 * 4) is not None


def test_labelled_folder(tmp_path, caplog):
    for cls, n in [("dog", 2), ("cat", 3), ("zebra", 1)]:
        for i in range(n):
            write_rgb(tmp_path / cls / f"{i}.png", (5, 5), seed=i)
    write_rgb(tmp_path / "cat" / "nested" / "x.jpg", (5, 5))
    write_bad_files(tmp_path / "dog")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "stray.png").write_bytes(b"")  # files at the root are not samples
    with caplog.at_level(logging.WARNING, logger="compress.calibrate"):
        folder = LabelledFolder(tmp_path, CIFAR)
    assert folder.classes == ["cat", "dog", "zebra"]
    assert folder.targets == [0, 0, 0, 0, 1, 1, 2]
    assert [p.relative_to(tmp_path).as_posix() for p in folder.paths[:4]] == ["cat/0.png", "cat/1.png", "cat/2.png", "cat/nested/x.jpg"]
    assert len(caplog.records) == 1 and "skipped 4 of 11 files" in caplog.records[0].getMessage()
    x, y = folder[5]
    assert x.shape == (3, 32, 32) and y == 1
    images, labels = preload_labelled(folder)
    assert labels.dtype == torch.int64 and labels.tolist() == folder.targets
    torch.testing.assert_close(images[5], x)
    assert preload_labelled(folder, max_bytes=16) is None


def test_many_empty_class_folders_are_one_short_warning(tmp_path, caplog):
    """A labelled folder with a folder per class of a 1,000-class model, most of them empty (a split by class),
    names the first few empty ones and counts the rest, instead of one line with every name."""
    for k in range(30):
        (tmp_path / f"c{k:02d}").mkdir()
    write_rgb(tmp_path / "c03" / "a.png", (5, 5))
    with caplog.at_level(logging.WARNING, logger="compress.calibrate"):
        folder = LabelledFolder(tmp_path, CIFAR)
    assert folder.targets == [3] and len(folder.empty_classes) == 29
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("29 of 30 class folders without a usable image")
    assert message.endswith("c00, c01, c02, c04, c05, c06, c07, c08 and 21 more")


def test_labelled_folder_errors(tmp_path):
    write_rgb(tmp_path / "loose.png")
    with pytest.raises(CalibrationError, match="no class folders") as exc:
        LabelledFolder(tmp_path, CIFAR)
    assert exc.value.exit_code == 4
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "note.txt").write_text("x")
    with pytest.raises(CalibrationError, match="no usable image"):
        LabelledFolder(tmp_path, CIFAR)
    with pytest.raises(CalibrationError, match="does not exist"):
        LabelledFolder(tmp_path / "missing", CIFAR)


@pytest.mark.parametrize("cores, workers", [(1, 0), (2, 0), (3, 2), (4, 3), (9, 8), (64, 8)])
def test_default_workers_follow_the_rule(monkeypatch, cores, workers):
    """Main process only up to 2 cores; beyond, one core left for the training loop, at most 8."""
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert default_workers() == workers
