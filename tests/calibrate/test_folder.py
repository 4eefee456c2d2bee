"""Discovery, skipping of unreadable files, and the folder-level errors."""

from __future__ import annotations

import logging

import pytest

from compress.calibrate.errors import CalibrationError
from compress.calibrate.folder import find_images, scan_folder

from .images import write_bad_files, write_rgb


def test_find_images_recursive_sorted_extensions_hidden(tmp_path):
    for rel in ["b.jpg", "a.PNG", "sub/c.jpeg", "sub/deep/d.TIF", "e.webp", "f.bmp", "g.tiff"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")  # discovery does not decode
    for rel in [".hidden.jpg", ".cache/h.png", "sub/.x/i.jpg", "notes.txt", "anim.gif", "noext"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)]
    assert found == ["a.PNG", "b.jpg", "e.webp", "f.bmp", "g.tiff", "sub/c.jpeg", "sub/deep/d.TIF"]


def test_find_images_missing_and_not_a_folder(tmp_path):
    with pytest.raises(CalibrationError) as exc:
        find_images(tmp_path / "nope")
    assert "nope" in str(exc.value) and "does not exist" in str(exc.value)
    assert exc.value.exit_code == 4
    f = write_rgb(tmp_path / "one.png")
    with pytest.raises(CalibrationError, match="not a folder"):
        scan_folder(f)


def test_scan_keeps_good_skips_bad_with_one_warning(tmp_path, caplog):
    good = [write_rgb(tmp_path / f"img{i}.jpg", seed=i) for i in range(3)]
    write_rgb(tmp_path / "sub" / "deep.png", seed=5)
    bad = write_bad_files(tmp_path)
    (tmp_path / "readme.txt").write_text("ignored")
    with caplog.at_level(logging.WARNING, logger="compress.calibrate"):
        result = scan_folder(tmp_path)
    assert result.paths == sorted(good + [tmp_path / "sub" / "deep.png"])
    assert sorted(p for p, _ in result.skipped) == sorted(bad.values())
    assert result.ignored == 1
    reasons = dict(result.skipped)
    assert reasons[bad["zero"]] == "empty file"
    assert reasons[bad["text"]] == "not an image"
    assert reasons[bad["truncated"]] == "truncated"
    records = [r for r in caplog.records if r.name == "compress.calibrate"]
    assert len(records) == 1
    msg = records[0].getMessage()
    assert "skipped 4 of 8 files" in msg and str(tmp_path) in msg and "first: corrupt.png" in msg


def test_scan_without_bad_files_warns_nothing(tmp_path, caplog):
    write_rgb(tmp_path / "a.png")
    with caplog.at_level(logging.WARNING, logger="compress.calibrate"):
        assert len(scan_folder(tmp_path)) == 1
    assert not caplog.records


def test_empty_folder_error(tmp_path):
    with pytest.raises(CalibrationError) as exc:
        scan_folder(tmp_path)
    assert exc.value.exit_code == 4
    assert f"no usable image in {tmp_path}" in str(exc.value)
    assert ".jpg" in exc.value.hint and ".png" in exc.value.hint


def test_only_text_files_error_says_so(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(CalibrationError, match="no file with an image extension among 1 files"):
        scan_folder(tmp_path)


def test_only_unreadable_files_error(tmp_path, caplog):
    write_bad_files(tmp_path)
    with caplog.at_level(logging.WARNING, logger="compress.calibrate"), pytest.raises(CalibrationError) as exc:
        scan_folder(tmp_path)
    assert "all 4 image files are unreadable" in str(exc.value)
    assert len(caplog.records) == 1


def test_max_images_seeded_subset(tmp_path):
    paths = [write_rgb(tmp_path / f"{i:02d}.png", (4, 4), seed=i) for i in range(12)]
    write_bad_files(tmp_path / "bad")
    a = scan_folder(tmp_path, max_images=5, seed=3)
    b = scan_folder(tmp_path, max_images=5, seed=3)
    assert a.paths == b.paths and len(a.paths) == 5
    assert a.paths == sorted(a.paths) and set(a.paths) <= set(paths)
    subsets = {tuple(scan_folder(tmp_path, max_images=5, seed=s).paths) for s in range(5)}
    assert len(subsets) > 1  # the seed matters
    assert scan_folder(tmp_path, max_images=100).paths == paths
    with pytest.raises(CalibrationError):
        scan_folder(tmp_path, max_images=0)
