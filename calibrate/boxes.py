"""Labelled detection folders: boxes in YOLO txt or COCO JSON, mapped through the image preprocessing.

Two layouts are read (``--eval DIR``):

- **YOLO**: ``DIR/images/NAME.*`` and ``DIR/labels/NAME.txt``, one object per line ``class cx cy w h``
  (centre and size normalised to [0, 1]); an image without its ``.txt`` has no objects (the YOLO rule).
- **COCO**: one JSON file in ``DIR`` (``annotations.json``, else the only ``*.json``) with ``images``
  (``id``, ``file_name``, ``width``, ``height``) and ``annotations`` (``image_id``, ``category_id``,
  ``bbox`` as ``[x, y, w, h]`` in pixels, optional ``iscrowd``); images are found under ``DIR/images/``
  or ``DIR``. Images the JSON does not list are not evaluated.

Class numbers are taken as they are: they must be the model's own label indices (YOLO class ids for a
YOLO model, COCO category ids for torchvision's COCO detectors, 0-9 for the embedded digits detector);
given the model's number of classes (``classes``), a class it does not have is an error naming the line.
Every file is read and checked before any image is decoded; a bad line or annotation is one error
naming the file and the line (or annotation) and what is wrong (exit code 4). Boxes follow the image's
geometry (resize of the shorter side and centre crop, a letterbox, or a straight resize to the input size)
and are clipped to the crop; boxes left without area are dropped.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import CalibrationError
from .folder import find_images, load_rgb
from .preprocess import Preprocess

_LAYOUT_HINT = "give images/ with labels/ (YOLO txt) or images with one COCO annotations.json"


@dataclass(frozen=True)
class Labelled:
    """One image's objects: boxes ``x1 y1 x2 y2`` as fractions of the image's width and height."""

    image: Path
    boxes: list[tuple[float, float, float, float]]
    labels: list[int]
    crowd: list[int]


def read_boxes(root: str | Path, classes: int | None = None) -> list[Labelled]:
    """Every image of a labelled detection folder with its objects, all label files checked (class numbers
    below ``classes``, the model's number of class scores, when given)."""
    root = Path(root)
    if (root / "labels").is_dir():
        return _read_yolo(root, classes)
    jsons = sorted(root.glob("*.json"))
    chosen = root / "annotations.json" if (root / "annotations.json").is_file() else (jsons[0] if len(jsons) == 1 else None)
    if chosen is None:
        found = f"{len(jsons)} JSON files" if jsons else "no labels/ and no JSON file"
        raise CalibrationError(f"{root} is not a labelled detection folder ({found})", _LAYOUT_HINT)
    return _read_coco(chosen, classes)


def class_error(classes: int) -> str:
    """The words for a class number the model does not have."""
    return f"the model has {classes} classes (0-{classes - 1})"


def _read_yolo(root: Path, classes: int | None) -> list[Labelled]:
    images_dir, labels_dir = root / "images", root / "labels"
    if not images_dir.is_dir():
        raise CalibrationError(f"{root} has labels/ but no images/", _LAYOUT_HINT)
    if not any(labels_dir.rglob("*.txt")):
        raise CalibrationError(f"{labels_dir} holds no .txt label files", "one NAME.txt per images/NAME.* (YOLO)")
    out = []
    for image in find_images(images_dir):
        txt = labels_dir / image.relative_to(images_dir).with_suffix(".txt")
        boxes, labels = _yolo_file(txt, classes) if txt.is_file() else ([], [])
        out.append(Labelled(image, boxes, labels, [0] * len(labels)))
    if not out:
        raise CalibrationError(f"no images in {images_dir}", "put the evaluation images in images/")
    return out


def _yolo_file(txt: Path, classes: int | None = None) -> tuple[list[tuple[float, float, float, float]], list[int]]:
    boxes, labels = [], []
    try:
        text = txt.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CalibrationError(f"cannot read labels {txt}: {err}", "save it as UTF-8 text") from err
    for n, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        bad = lambda why: CalibrationError(f"{txt} line {n}: {why}: {line.strip()[:80]!r}",  # noqa: E731
                                           "YOLO lines are 'class cx cy w h', class an int >= 0, the rest in [0, 1]")
        if len(fields) != 5:
            raise bad(f"{len(fields)} fields, expected 5")
        try:
            cls, (cx, cy, w, h) = int(fields[0]), (float(v) for v in fields[1:])
        except ValueError:
            raise bad("not numbers") from None
        if cls < 0:
            raise bad("negative class")
        if classes is not None and cls >= classes:
            raise bad(f"class {cls}, but {class_error(classes)}")
        if not all(math.isfinite(v) and -1e-6 <= v <= 1 + 1e-6 for v in (cx, cy, w, h)) or w <= 0 or h <= 0:
            raise bad("coordinates outside [0, 1] or an empty box")
        boxes.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        labels.append(cls)
    return boxes, labels


def _read_coco(path: Path, classes: int | None) -> list[Labelled]:
    hint = "COCO JSON needs images [{id, file_name, width, height}] and annotations [{image_id, category_id, bbox}]"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CalibrationError(f"{path} line {err.lineno}: not valid JSON ({err.msg})", hint) from None
    except (OSError, UnicodeDecodeError) as err:
        raise CalibrationError(f"cannot read {path}: {err}", hint) from err
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("annotations"), list):
        raise CalibrationError(f"{path} has no 'images' and 'annotations' lists", hint)
    base = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    entries: dict = {}
    for i, im in enumerate(data["images"]):
        try:
            key, name, width, height = im["id"], str(im["file_name"]), float(im["width"]), float(im["height"])
        except (KeyError, TypeError, ValueError):
            raise CalibrationError(f"{path}: images[{i}] lacks id, file_name, width or height", hint) from None
        if width <= 0 or height <= 0:
            raise CalibrationError(f"{path}: images[{i}] ({name}) has size {width}x{height}", hint)
        if not (base / name).is_file():
            raise CalibrationError(f"{path}: images[{i}] names {base / name}, which does not exist",
                                   "put the images under images/ or next to the JSON")
        entries[key] = (base / name, width, height, [], [], [])
    for i, ann in enumerate(data["annotations"]):
        where = f"{path}: annotations[{i}]" + (f" (id {ann['id']})" if isinstance(ann, dict) and "id" in ann else "")
        try:
            image_id, cls, bbox = ann["image_id"], int(ann["category_id"]), [float(v) for v in ann["bbox"]]
        except (KeyError, TypeError, ValueError):
            raise CalibrationError(f"{where} lacks image_id, category_id or bbox", hint) from None
        if image_id not in entries:
            raise CalibrationError(f"{where} refers to image_id {image_id!r}, which images does not list", hint)
        if len(bbox) != 4 or not all(math.isfinite(v) for v in bbox) or bbox[2] <= 0 or bbox[3] <= 0 or cls < 0:
            raise CalibrationError(f"{where}: bad bbox {ann['bbox']!r} or category {cls}",
                                   "bbox is [x, y, width, height] in pixels, width and height > 0")
        if classes is not None and cls >= classes:
            raise CalibrationError(f"{where}: category_id {cls}, but {class_error(classes)}",
                                   "category ids must be the model's own class indices")
        _, width, height, boxes, labels, crowd = entries[image_id]
        x, y, w, h = bbox
        boxes.append((x / width, y / height, (x + w) / width, (y + h) / height))
        labels.append(cls)
        crowd.append(int(bool(ann.get("iscrowd", 0))))
    if not entries:
        raise CalibrationError(f"{path} lists no images", hint)
    return [Labelled(p, b, lab, c) for p, _, _, b, lab, c in entries.values()]


def box_geometry(boxes: torch.Tensor, size: tuple[int, int], preprocess: Preprocess) -> torch.Tensor:
    """Fractional ``x1 y1 x2 y2`` boxes of an image of ``size`` (w, h) -> pixels of the preprocessed input."""
    h, w = preprocess.input_size
    if preprocess.letterbox:  # (shorter side resized, then) scaled to fit and centred
        iw, ih = size
        if preprocess.resize is not None:
            short, long = min(iw, ih), max(iw, ih)
            new_long = int(preprocess.resize * long / short)
            iw, ih = (preprocess.resize, new_long) if iw <= ih else (new_long, preprocess.resize)
        nw, nh, left, top = preprocess.letterbox_frame(iw, ih)
        return boxes * torch.tensor([nw, nh, nw, nh], dtype=boxes.dtype) + torch.tensor([left, top, left, top],
                                                                                         dtype=boxes.dtype)
    if not preprocess.center_crop:  # resized (shorter side, then) straight to the input size
        return boxes * torch.tensor([w, h, w, h], dtype=boxes.dtype)
    iw, ih = size
    if preprocess.resize is not None:
        short, long = min(iw, ih), max(iw, ih)
        new_long = int(preprocess.resize * long / short)
        iw, ih = (preprocess.resize, new_long) if iw <= ih else (new_long, preprocess.resize)
    top = -((h - ih) // 2) if h > ih else int(round((ih - h) / 2.0))
    left = -((w - iw) // 2) if w > iw else int(round((iw - w) / 2.0))
    px = boxes * torch.tensor([iw, ih, iw, ih], dtype=boxes.dtype) - torch.tensor([left, top, left, top], dtype=boxes.dtype)
    return torch.stack([px[:, 0].clamp(0, w), px[:, 1].clamp(0, h), px[:, 2].clamp(0, w), px[:, 3].clamp(0, h)], 1)


def load_detection(root: str | Path, preprocess: Preprocess,
                   classes: int | None = None) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """(images (N, 3, H, W) float, per image ``{"boxes" (m, 4) pixels, "labels" (m,), "iscrowd" (m,)}``)."""
    items = read_boxes(root, classes)  # every label checked before the first image is decoded
    xs, targets = [], []
    for item in items:
        img = load_rgb(item.image)
        xs.append(preprocess(img))
        boxes = box_geometry(torch.tensor(item.boxes, dtype=torch.float32).reshape(-1, 4), img.size, preprocess)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        targets.append({"boxes": boxes[keep], "labels": torch.tensor(item.labels, dtype=torch.int64)[keep],
                        "iscrowd": torch.tensor(item.crowd, dtype=torch.int64)[keep]})
    return torch.stack(xs), targets
