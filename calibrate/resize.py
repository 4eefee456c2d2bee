"""Resize kernels as training pipelines built on OpenCV apply them, in numpy (OpenCV is not needed).

- ``pil``: PIL's bilinear filter, antialiased when shrinking (torchvision's ``Resize`` on PIL images).
- ``bilinear``: ``cv2.resize(..., interpolation=cv2.INTER_LINEAR)``: half-pixel centres, the two nearest
  source pixels per axis, no antialiasing (a shrink by more than 2 skips pixels, as OpenCV does).
- ``area``: ``cv2.INTER_AREA``: when shrinking on both axes, each output pixel is the mean of the source
  area it covers (fractional overlaps weighted); otherwise OpenCV's area-linear rule.

Both OpenCV kernels are separable linear maps, written as a weight matrix per axis and rounded to uint8 once
(OpenCV's fixed-point bilinear arithmetic may differ by one grey level). :func:`letterbox` is Ultralytics'
``LetterBox``: the image scaled to fit, centred, padded with grey 114.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

KERNELS = ("pil", "bilinear", "area")
PAD_VALUE = 114  # Ultralytics' letterbox grey


def _linear(src: int, dst: int, area: bool = False) -> np.ndarray:
    """(dst, src) weights of OpenCV's INTER_LINEAR (or INTER_AREA when not shrinking) along one axis."""
    scale = src / dst
    d = np.arange(dst, dtype=np.float64)
    if area:  # cv2: sx = floor(dx * scale); fx = (dx + 1) - (sx + 1) / scale, kept in [0, 1)
        x0 = np.floor(d * scale).astype(np.int64)
        fx = (d + 1) - (x0 + 1) / scale
        fx = np.where(fx <= 0, 0.0, fx - np.floor(fx))
    else:
        f = (d + 0.5) * scale - 0.5
        x0 = np.floor(f).astype(np.int64)
        fx = f - x0
    low = x0 < 0
    x0, fx = np.where(low, 0, x0), np.where(low, 0.0, fx)
    high = x0 >= src - 1
    x0, fx = np.where(high, src - 1, x0), np.where(high, 0.0, fx)
    w = np.zeros((dst, src))
    rows = np.arange(dst)
    np.add.at(w, (rows, x0), 1 - fx)
    np.add.at(w, (rows, np.minimum(x0 + 1, src - 1)), fx)
    return w


def _box(src: int, dst: int) -> np.ndarray:
    """(dst, src) weights of OpenCV's INTER_AREA shrink: each output covers ``src / dst`` source pixels."""
    scale = src / dst
    w = np.zeros((dst, src))
    for d in range(dst):
        lo, hi = d * scale, (d + 1) * scale
        for s in range(int(np.floor(lo)), min(int(np.ceil(hi)), src)):
            w[d, s] = (min(hi, s + 1) - max(lo, s)) / scale
    return w


def resize_array(arr: np.ndarray, size: tuple[int, int], kernel: str) -> np.ndarray:
    """``arr`` (H, W, C) uint8 resized to ``size`` = (w, h) with an OpenCV kernel (``bilinear`` or ``area``)."""
    h, w = arr.shape[:2]
    nw, nh = size
    if (nw, nh) == (w, h):
        return arr
    if kernel == "area" and nw <= w and nh <= h:
        wy, wx = _box(h, nh), _box(w, nw)
    else:
        wy, wx = _linear(h, nh, kernel == "area"), _linear(w, nw, kernel == "area")
    out = np.einsum("yh,hwc,xw->yxc", wy, arr.astype(np.float64), wx)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def resize(img: Image.Image, size: tuple[int, int], kernel: str) -> Image.Image:
    """An RGB image resized to ``size`` = (w, h): PIL bilinear (``pil``) or an OpenCV kernel."""
    if img.size == tuple(size):
        return img
    if kernel == "pil":
        return img.resize(tuple(size), Image.BILINEAR)
    return Image.fromarray(resize_array(np.asarray(img, dtype=np.uint8), size, kernel))


def letterbox_frame(w: int, h: int, out_h: int, out_w: int) -> tuple[int, int, int, int]:
    """Where an image of ``w`` x ``h`` lands in an ``out_h`` x ``out_w`` letterbox: (width, height, left, top)."""
    r = min(out_h / h, out_w / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    left, top = int(round((out_w - nw) / 2 - 0.1)), int(round((out_h - nh) / 2 - 0.1))
    return nw, nh, left, top


def letterbox(img: Image.Image, out_h: int, out_w: int, kernel: str) -> Image.Image:
    """Ultralytics' ``LetterBox``: scaled to fit (aspect kept), centred on grey ``PAD_VALUE``."""
    nw, nh, left, top = letterbox_frame(*img.size, out_h, out_w)
    canvas = Image.new("RGB", (out_w, out_h), (PAD_VALUE,) * 3)
    canvas.paste(resize(img, (nw, nh), kernel), (left, top))
    return canvas
