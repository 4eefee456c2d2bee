"""Labelled segmentation folders: ``images/`` and ``masks/`` side by side (the common layout).

``masks/NAME.png`` holds the class index of each pixel of ``images/NAME.*`` (a greyscale or palette
PNG; 255 = ignore) and has its image's size; given the model's number of classes, any other value is an
error naming the mask, checked before the model sees an image. A mask goes through the image's geometry (resize of the shorter side, centre crop
or a straight resize to the input size) with nearest-neighbour sampling, so each label stays on its
pixel; the crop's padding is 255 (ignored), never a class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import CalibrationError
from .folder import find_images, load_rgb
from .preprocess import Preprocess

IGNORE = 255


def mask_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(image, mask) paths of a segmentation folder; an image without its mask is an error naming it."""
    root = Path(root)
    images, masks = root / "images", root / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise CalibrationError(f"{root} is not a segmentation folder",
                               "give a folder with images/ and masks/ (masks/NAME.png per images/NAME.*)")
    pairs = []
    for image in find_images(images):
        mask = masks / image.relative_to(images).with_suffix(".png")
        if not mask.is_file():
            raise CalibrationError(f"{image} has no mask {mask}", "add the mask PNG or remove the image")
        pairs.append((image, mask))
    if not pairs:
        raise CalibrationError(f"no images in {images}", "put the evaluation images in images/")
    return pairs


def mask_geometry(mask: Image.Image, preprocess: Preprocess) -> np.ndarray:
    """The mask resized/cropped as ``preprocess.geometry`` does the image, nearest-neighbour: (H, W) int64."""
    if mask.mode not in ("L", "P", "I", "I;16"):
        raise CalibrationError(f"a mask must be a single-channel PNG of class indices, got mode {mask.mode}",
                               "save masks as greyscale or palette PNGs")
    h, w = preprocess.input_size
    if preprocess.resize is not None:
        iw, ih = mask.size
        short, long = min(iw, ih), max(iw, ih)
        new_long = int(preprocess.resize * long / short)
        size = (preprocess.resize, new_long) if iw <= ih else (new_long, preprocess.resize)
        if size != mask.size:
            mask = mask.resize(size, Image.NEAREST)
    arr = np.asarray(mask).astype(np.int64)
    if preprocess.center_crop:
        return _center_crop(arr, h, w)
    if arr.shape != (h, w):
        arr = np.asarray(Image.fromarray(arr.astype(np.int32)).resize((w, h), Image.NEAREST)).astype(np.int64)
    return arr


def _center_crop(arr: np.ndarray, h: int, w: int) -> np.ndarray:
    ih, iw = arr.shape
    top = -((h - ih) // 2) if h > ih else int(round((ih - h) / 2.0))
    left = -((w - iw) // 2) if w > iw else int(round((iw - w) / 2.0))
    out = np.full((h, w), IGNORE, dtype=np.int64)
    ys, xs = max(0, top), max(0, left)
    ye, xe = min(ih, top + h), min(iw, left + w)
    out[ys - top:ye - top, xs - left:xe - left] = arr[ys:ye, xs:xe]
    return out


def load_segmentation(root: str | Path, preprocess: Preprocess,
                      classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 3, H, W) float, masks (N, H, W) int64) of a segmentation folder, preprocessed; every mask
    the size of its image and, given ``classes``, of values below it or 255."""
    xs, ys = [], []
    for image, mask in mask_pairs(root):
        img = load_rgb(image)
        try:
            with Image.open(mask) as m:
                m.load()
                _check_mask(m, mask, img.size, image, classes)
                ys.append(torch.from_numpy(mask_geometry(m, preprocess)))
        except OSError as err:
            raise CalibrationError(f"cannot read mask {mask}: {err}", "re-save it as a PNG") from err
        xs.append(preprocess(img))
    return torch.stack(xs), torch.stack(ys)


def _check_mask(m: Image.Image, path: Path, size: tuple[int, int], image: Path, classes: int | None) -> None:
    if m.size != size:
        raise CalibrationError(f"mask {path} is {m.size[0]}x{m.size[1]} but its image {image} is {size[0]}x{size[1]}",
                               "a mask holds one class index per pixel of its image: save it at the image's size")
    if classes is None or m.mode not in ("L", "P", "I", "I;16"):
        return  # a mode mask_geometry refuses is named there
    values = np.unique(np.asarray(m))
    bad = values[((values < 0) | (values >= classes)) & (values != IGNORE)]
    if bad.size:
        raise CalibrationError(f"mask {path} holds class {int(bad[0])}, but the model has {classes} classes "
                               f"(0-{classes - 1}; {IGNORE} = ignore)",
                               "mask values must be the model's own class indices, or 255 for pixels to ignore")
