from __future__ import annotations

from pathlib import Path

import pytest

from compress.calibrate.errors import CalibrationError
from compress.calibrate.labels import read_labels_csv


def _csv(tmp_path, text: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return path


def test_labels_by_name(tmp_path):
    csv = _csv(tmp_path, "file,class_index,class_name\n00001.jpg,2,bird\n00000.jpg,0,airplane\nextra.jpg,5,dog\n")
    paths = [Path("/calib/00000.jpg"), Path("/calib/00001.jpg")]
    assert read_labels_csv(csv, paths) == [0, 2]
    assert read_labels_csv(_csv(tmp_path, "class_index,file\n7,00000.jpg\n"), paths[:1]) == [7]


def test_ambiguous_names_need_relative_paths(tmp_path):
    paths = [Path("/calib/cats/1.jpg"), Path("/calib/dogs/1.jpg")]
    csv = _csv(tmp_path, "file,class_index\ncats/1.jpg,3\ndogs/1.jpg,5\n")
    assert read_labels_csv(csv, paths) == [3, 5]
    with pytest.raises(CalibrationError, match="ambiguous") as exc:
        read_labels_csv(_csv(tmp_path, "file,class_index\n1.jpg,3\n"), paths)
    assert "relative paths" in exc.value.hint


def test_missing_image_names_it_and_the_csv(tmp_path):
    csv = _csv(tmp_path, "file,class_index\na.jpg,1\n")
    with pytest.raises(CalibrationError) as exc:
        read_labels_csv(csv, [Path("/c/a.jpg"), Path("/c/b.jpg"), Path("/c/c.jpg")])
    msg = str(exc.value)
    assert "b.jpg" in msg and str(csv) in msg and "1 more" in msg
    assert exc.value.exit_code == 4


@pytest.mark.parametrize("text, match", [
    ("name,label\na.jpg,1\n", "header"),
    ("file,class_index\na.jpg,one\n", "line 2"),
    ("file,class_index\na.jpg,-1\n", "line 2"),
    ("file,class_index\na.jpg,1\na.jpg,2\n", "several classes"),
])
def test_bad_csv(tmp_path, text, match):
    with pytest.raises(CalibrationError, match=match):
        read_labels_csv(_csv(tmp_path, text), [Path("/c/a.jpg")])


def test_missing_csv(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        read_labels_csv(tmp_path / "nope.csv", [Path("a.jpg")])
