"""Labelled detection folders (compress.calibrate.boxes): YOLO txt, COCO JSON, geometry, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from compress.calibrate import CalibrationError, Preprocess
from compress.calibrate.boxes import box_geometry, load_detection, read_boxes


def _image(path, w=40, h=20):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((h, w, 3), dtype=np.uint8)).save(path)


def _yolo(tmp_path, lines: str):
    _image(tmp_path / "images" / "a.png")
    _image(tmp_path / "images" / "b.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text(lines)
    return tmp_path


def test_yolo_boxes_follow_a_straight_resize(tmp_path):
    root = _yolo(tmp_path, "3 0.5 0.5 0.5 0.5\n\n1 0.25 0.75 0.1 0.2\n")
    images, targets = load_detection(root, Preprocess(input_size=(10, 20)))  # (H, W): 40x20 image -> 20x10
    assert images.shape == (2, 3, 10, 20)
    assert targets[0]["labels"].tolist() == [3, 1]
    assert torch.allclose(targets[0]["boxes"], torch.tensor([[5.0, 2.5, 15.0, 7.5], [4.0, 6.5, 6.0, 8.5]]))
    assert targets[1]["boxes"].shape == (0, 4)  # b.png has no .txt: no objects (the YOLO rule)


@pytest.mark.parametrize("line,why", [("3 0.5 0.5 0.5\n", "4 fields"), ("x 0.5 0.5 0.5 0.5\n", "not numbers"),
                                      ("3 0.5 1.7 0.5 0.5\n", "outside"), ("-1 0.5 0.5 0.5 0.5\n", "negative"),
                                      ("2 0.5 0.5 0 0.5\n", "empty box")])
def test_a_bad_yolo_line_is_one_error_naming_file_and_line(tmp_path, line, why):
    root = _yolo(tmp_path, "1 0.5 0.5 0.2 0.2\n" + line)
    with pytest.raises(CalibrationError) as err:
        read_boxes(root)
    assert f"a.txt line 2: " in str(err.value) and why in str(err.value)
    assert err.value.exit_code == 4 and "\n" not in str(err.value)


def _coco(tmp_path, annotations, images=None):
    _image(tmp_path / "images" / "a.png")
    data = {"images": images or [{"id": 7, "file_name": "a.png", "width": 40, "height": 20}],
            "annotations": annotations, "categories": []}
    (tmp_path / "annotations.json").write_text(json.dumps(data, indent=1))
    return tmp_path


def test_coco_boxes_follow_resize_and_centre_crop(tmp_path):
    root = _coco(tmp_path, [{"id": 1, "image_id": 7, "category_id": 5, "bbox": [0, 0, 20, 10]},
                            {"id": 2, "image_id": 7, "category_id": 2, "bbox": [0, 0, 4, 4], "iscrowd": 1}])
    # shorter side 20 -> 10 (the 40x20 image becomes 20x10), centre crop 10x10 cuts 5 px on the left
    images, targets = load_detection(root, Preprocess(input_size=(10, 10), resize=10, center_crop=True))
    assert images.shape == (1, 3, 10, 10)
    assert targets[0]["labels"].tolist() == [5]  # the small box falls left of the crop and is dropped
    assert torch.allclose(targets[0]["boxes"], torch.tensor([[0.0, 0.0, 5.0, 5.0]]))


def test_box_geometry_pads_a_small_image_like_the_crop():
    out = box_geometry(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), (4, 4), Preprocess(input_size=(8, 8), center_crop=True))
    assert out.tolist() == [[2.0, 2.0, 6.0, 6.0]]


@pytest.mark.parametrize("ann,why", [({"image_id": 9, "category_id": 1, "bbox": [0, 0, 2, 2]}, "image_id 9"),
                                     ({"image_id": 7, "category_id": 1, "bbox": [0, 0, 0, 2]}, "bad bbox"),
                                     ({"image_id": 7, "bbox": [0, 0, 2, 2]}, "lacks")])
def test_a_bad_coco_annotation_names_it(tmp_path, ann, why):
    root = _coco(tmp_path, [{"id": 1, "image_id": 7, "category_id": 5, "bbox": [0, 0, 20, 10]}, {"id": 42, **ann}])
    with pytest.raises(CalibrationError) as err:
        read_boxes(root)
    assert "annotations[1] (id 42)" in str(err.value) and why in str(err.value) and err.value.exit_code == 4


def test_broken_json_names_its_line(tmp_path):
    _image(tmp_path / "images" / "a.png")
    (tmp_path / "annotations.json").write_text('{"images": [],\n "annotations": [,]}')
    with pytest.raises(CalibrationError, match=r"annotations.json line 2: not valid JSON"):
        read_boxes(tmp_path)


def test_a_folder_without_labels_is_refused(tmp_path):
    _image(tmp_path / "images" / "a.png")
    with pytest.raises(CalibrationError, match="not a labelled detection folder"):
        read_boxes(tmp_path)
