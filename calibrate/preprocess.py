"""How an RGB image becomes the model's input tensor: resize, crop, normalise.

Geometry follows torchvision (``Resize(int)`` then ``CenterCrop``) so the tensors match what
a model trained with the usual torchvision pipeline expects. The steps are:

1. ``resize`` set: scale the shorter side to ``resize`` (aspect ratio kept, bilinear);
2. ``center_crop``: cut the centre ``input_size`` (torchvision pads with zeros if smaller);
   ``letterbox``: scale to fit ``input_size`` (aspect kept) and centre on grey 114, as Ultralytics does;
   otherwise, if the image is not already ``input_size``, resize it straight to it (stretch);
3. to float in ``[0, 1]``, in the model's ``channel_order`` (``rgb``, or ``bgr`` for a model trained on
   OpenCV images), then ``(x - mean) / std`` per channel (in that order).

Every resize uses ``resize_kernel`` (``calibrate.resize``): ``pil`` (PIL bilinear, antialiased when shrinking),
or ``bilinear`` / ``area`` without antialiasing, as OpenCV's ``cv2.resize`` INTER_LINEAR / INTER_AREA.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from .errors import CalibrationError
from .resize import KERNELS, letterbox, letterbox_frame, resize

CHANNEL_ORDERS = ("rgb", "bgr")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_SIZE_FORMS = "an int (224), 'HxW' (224x224), '3xHxW' (3x224x224) or a tuple (H, W) / (3, H, W)"


@dataclass(frozen=True)
class Preprocess:
    """A deterministic image -> tensor transform; ``input_size`` is ``(H, W)``."""

    input_size: tuple[int, int]
    resize: int | None = None
    center_crop: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "rgb"  # the model's input channel order (bgr: trained on OpenCV images)
    resize_kernel: str = "pil"  # calibrate.resize.KERNELS
    letterbox: bool = False  # fit and pad instead of stretching to input_size

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", parse_input_size(self.input_size))
        object.__setattr__(self, "mean", _triple(self.mean, "mean"))
        object.__setattr__(self, "std", _triple(self.std, "std"))
        if any(s <= 0 for s in self.std):
            raise CalibrationError(f"std must be positive, got {self.std}")
        if self.resize is not None:
            if isinstance(self.resize, bool) or not isinstance(self.resize, int) or self.resize < 1:
                raise CalibrationError(f"resize must be a positive int or None, got {self.resize!r}")
        object.__setattr__(self, "center_crop", bool(self.center_crop))
        object.__setattr__(self, "letterbox", bool(self.letterbox))
        for name, value, allowed in (("channel order", self.channel_order, CHANNEL_ORDERS),
                                     ("resize kernel", self.resize_kernel, KERNELS)):
            if value not in allowed:
                raise CalibrationError(f"unknown {name} {value!r}", f"choose one of {', '.join(allowed)}")
        if self.letterbox and self.center_crop:
            raise CalibrationError("letterbox and centre crop are two ways to reach the input size",
                                   "choose one (a letterbox pads, a crop cuts)")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(3, H, W)``: the shape of one model input, without the batch dimension."""
        return (3, *self.input_size)

    def geometry(self, img: Image.Image) -> Image.Image:
        """Steps 1–2: the RGB image resized/cropped to exactly ``input_size``."""
        if img.mode != "RGB":
            img = img.convert("RGB")
        h, w = self.input_size
        if self.resize is not None:
            img = resize_shorter(img, self.resize, self.resize_kernel)
        if self.center_crop:
            img = center_crop(img, h, w)
        elif self.letterbox:
            img = letterbox(img, h, w, self.resize_kernel)
        elif img.size != (w, h):
            img = resize(img, (w, h), self.resize_kernel)
        return img

    def letterbox_frame(self, w: int, h: int) -> tuple[int, int, int, int]:
        """Where a ``w`` x ``h`` image lands in the letterbox: (width, height, left, top) in input pixels."""
        return letterbox_frame(w, h, *self.input_size)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        """A normalised float32 tensor of shape ``(3, H, W)``."""
        arr = np.asarray(self.geometry(img), dtype=np.uint8)
        x = torch.from_numpy(arr.copy()).permute(2, 0, 1).to(torch.float32).div_(255.0)
        if self.channel_order == "bgr":
            x = x.flip(0)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)
        return x.sub_(mean).div_(std)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (stored with a pruned model so it can be reproduced)."""
        out = {"input_size": list(self.input_size), "resize": self.resize, "center_crop": self.center_crop,
               "mean": list(self.mean), "std": list(self.std)}
        for key, default in PIPELINE_DEFAULTS.items():  # written when not the default: earlier files stay as they were
            if getattr(self, key) != default:
                out[key] = getattr(self, key)
        return out

    def describe(self) -> str:
        """One line a deployment can reproduce the input from."""
        h, w = self.input_size
        steps = [f"shorter side to {self.resize}"] if self.resize else []
        steps.append(f"centre crop {h}x{w}" if self.center_crop else f"letterbox {h}x{w} (grey 114)" if self.letterbox
                     else f"resize to {h}x{w}")
        kernel = {"pil": "PIL bilinear, antialiased", "bilinear": "bilinear without antialiasing (cv2 INTER_LINEAR)",
                  "area": "area (cv2 INTER_AREA)"}[self.resize_kernel]
        return (f"{', '.join(steps)} ({kernel}); {self.channel_order.upper()} /255, mean {list(self.mean)}, "
                f"std {list(self.std)}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocess":
        """Inverse of :meth:`to_dict`; unknown keys are an error (a typo must not pass silently)."""
        known = {"input_size", "resize", "center_crop", "mean", "std", *PIPELINE_DEFAULTS}
        extra = set(data) - known
        if extra:
            raise CalibrationError(f"unknown preprocessing keys: {', '.join(sorted(extra))}",
                                   f"expected {', '.join(sorted(known))}")
        if "input_size" not in data:
            raise CalibrationError("preprocessing settings lack input_size")
        return cls(input_size=data["input_size"], resize=data.get("resize"),
                   center_crop=data.get("center_crop", False),
                   mean=data.get("mean", IMAGENET_MEAN), std=data.get("std", IMAGENET_STD),
                   **{k: data.get(k, v) for k, v in PIPELINE_DEFAULTS.items()})


PIPELINE_DEFAULTS = {"channel_order": "rgb", "resize_kernel": "pil", "letterbox": False}


def resize_shorter(img: Image.Image, size: int, kernel: str = "pil") -> Image.Image:
    """torchvision ``Resize(size)`` on a PIL image: shorter side to ``size``, bilinear.

    Done with PIL directly (same arithmetic as torchvision) so decoding does not pay for
    importing torchvision.
    """
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    new_w, new_h = (size, new_long) if w <= h else (new_long, size)
    return resize(img, (new_w, new_h), kernel)


def center_crop(img: Image.Image, h: int, w: int) -> Image.Image:
    """torchvision ``CenterCrop((h, w))``: the centre, zero-padded where the image is smaller."""
    iw, ih = img.size
    if (iw, ih) == (w, h):
        return img
    top = -((h - ih) // 2) if h > ih else int(round((ih - h) / 2.0))
    left = -((w - iw) // 2) if w > iw else int(round((iw - w) / 2.0))
    return img.crop((left, top, left + w, top + h))  # PIL fills outside the image with zeros


def parse_input_size(value: Any) -> tuple[int, int]:
    """``(H, W)`` from 224, "224", "224x224", "3x224x224", (224, 224) or (3, 224, 224)."""
    parts: list[Any]
    if isinstance(value, bool):
        parts = []
    elif isinstance(value, int):
        parts = [value]
    elif isinstance(value, str):
        text = value.strip().strip("()[]")
        parts = re.split(r"\s*[xX*,]\s*|\s+", text) if text else []  # "224x" keeps an empty part: an error
    elif isinstance(value, Sequence):
        parts = list(value)
    else:
        parts = []
    try:
        nums = [_positive_int(p) for p in parts]
    except (TypeError, ValueError):
        nums = []
    if len(nums) == 3 and nums[0] == 3:
        nums = nums[1:]
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2:
        hint = "only RGB (3-channel) inputs are supported" if len(parts) == 3 else f"use {_SIZE_FORMS}"
        raise CalibrationError(f"cannot read input size {value!r}", hint)
    return (nums[0], nums[1])


def _positive_int(p: Any) -> int:
    if isinstance(p, bool):
        raise ValueError(p)
    if isinstance(p, float):
        if not p.is_integer():
            raise ValueError(p)
        p = int(p)
    n = int(p)
    if n < 1:
        raise ValueError(p)
    return n


def _triple(value: Any, name: str) -> tuple[float, float, float]:
    """Three finite floats from a sequence, a single number, or "a,b,c"."""
    if isinstance(value, str):
        value = [p for p in re.split(r"[\s,]+", value.strip().strip("()[]")) if p]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    try:
        nums = [float(v) for v in value]
    except (TypeError, ValueError):
        nums = []
    if len(nums) == 1:
        nums = nums * 3
    if len(nums) != 3 or not all(math.isfinite(v) for v in nums):
        raise CalibrationError(f"cannot read {name} {value!r}", f"give three numbers, one per RGB channel, e.g. 0.5,0.5,0.5")
    return (nums[0], nums[1], nums[2])


# Named settings; ``imagenet``: torchvision's Resize(256) + CenterCrop(224); ``cifar``: 32x32 as is; ``scenes48``: 48x48 as is.
PRESETS: dict[str, Preprocess] = {
    "imagenet": Preprocess(input_size=(224, 224), resize=256, center_crop=True),
    "cifar": Preprocess(input_size=(32, 32), resize=None, center_crop=False),
    "scenes48": Preprocess(input_size=(48, 48), resize=None, center_crop=False),  # the embedded detector's scenes
    "yolo": Preprocess(input_size=(640, 640), resize=None, center_crop=False, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
}


def resolve_preprocess(preset: str | None = None, input_size: Any = None, mean: Any = None, std: Any = None,
                       default: str | None = "imagenet", channel_order: str | None = None,
                       resize_kernel: str | None = None, letterbox: bool | None = None) -> Preprocess:
    """A :class:`Preprocess` from a preset name plus explicit overrides.

    Explicit ``input_size``/``mean``/``std`` win over the preset. With a preset that resizes
    then crops (``imagenet``), a new ``input_size`` keeps the preset's resize/crop ratio
    (256/224). With ``input_size`` and no preset, images are resized straight to it (no crop),
    normalised with the ImageNet mean/std unless given. With neither, ``default`` is used.
    """
    size = parse_input_size(input_size) if input_size is not None else None
    if preset is None and size is not None:
        base = Preprocess(input_size=size)
    else:
        name = preset if preset is not None else default
        if name is None:
            raise CalibrationError("no preprocessing given", "pass a preset or an input size")
        key = str(name).strip().lower()
        if key not in PRESETS:
            raise CalibrationError(f"unknown preprocessing preset {name!r}", f"choose one of {', '.join(sorted(PRESETS))}")
        base = PRESETS[key]
        if size is not None and size != base.input_size:
            resize = None
            if base.resize is not None:
                ratio = base.resize / min(base.input_size)
                resize = int(round(min(size) * ratio))
            base = Preprocess(input_size=size, resize=resize, center_crop=base.center_crop, mean=base.mean, std=base.std)
    given = {k: v for k, v in dict(channel_order=channel_order, resize_kernel=resize_kernel,
                                   letterbox=letterbox).items() if v is not None}  # the training pipeline's own
    return Preprocess(input_size=base.input_size, resize=base.resize, center_crop=base.center_crop,
                      mean=base.mean if mean is None else mean, std=base.std if std is None else std,
                      **{k: given.get(k, getattr(base, k)) for k in PIPELINE_DEFAULTS})
