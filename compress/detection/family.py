"""A detector family: everything compress knows about one kind of detection model, in one file.

A :class:`Family` says which models are its own (``claims``, asked of the whole detection model), how to
make the raw-output network compress prunes (``wrap``, see ``compress.detection``), how the whole detector
turns images in [0, 1] into boxes (``detections``: what mAP reads and what the bench times apart), the raw
outputs it adds to the ``detect`` task's (``outputs``: name -> kind, see ``compress.tasks.detect``), the
preprocessing preset its checkpoints read (``preset``, for class paths under ``modules``), and, where the
network decodes itself, that decoding alone (``postprocess``).

Each family is one file holding ``FAMILY = Family(...)``; :data:`FAMILIES` names them, in the order they
are asked (the first that claims a model has it). A model no family claims is not a detector to compress
(it is pruned as it is). Worked example: ARCHITECTURE.md, "To support a new detector family".
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn as nn

FAMILIES = (  # "module" holding FAMILY, asked in this order
    "compress.detection.embedded",
    "compress.detection.maskrcnn",
    "compress.detection.torchvision_raw",
    "compress.detection.yolo",
)

Detections = list[dict[str, torch.Tensor]]  # per image: boxes (x1, y1, x2, y2 in pixels), scores, labels


def listed_images(detector: Any, images: torch.Tensor) -> Detections:
    """The torchvision convention: the whole detector takes a list of [0, 1] images and returns a dict each."""
    return [{k: d[k].cpu() for k in ("boxes", "scores", "labels")} for d in detector(list(images))]


@dataclass(frozen=True)
class Family:
    name: str  # how messages name it
    claims: Callable[[nn.Module], bool]  # is this whole detection model (or self-decoding network) ours
    wrap: Callable[[nn.Module], nn.Module]  # its raw-output network; an unsupported variant is refused by name
    detections: Callable[[Any, torch.Tensor], Detections] = listed_images  # whole detector, [0, 1] images -> boxes
    outputs: dict[str, str] = field(default_factory=dict)  # raw outputs it adds: name -> softmax | sigmoid | box
    modules: tuple[str, ...] = ()  # package prefixes of its model classes (a pickled model's class path)
    preset: str | None = None  # the preprocessing preset of those checkpoints (compress.calibrate.preprocess)
    postprocess: Callable[[nn.Module, Any, tuple[int, int]], Detections] | None = None  # decoding alone, if separable


@functools.cache
def families() -> tuple[Family, ...]:
    return tuple(importlib.import_module(name).FAMILY for name in FAMILIES)


def whole_of(model: nn.Module) -> nn.Module:
    """The model a family claims: the detector behind a raw-output network, else the model itself."""
    from compress.detection.base import RawDetector

    return model._detector if isinstance(model, RawDetector) else model


def family_of(model: nn.Module) -> Family | None:
    """The family of a whole detection model or of its raw-output network (None: not a detector)."""
    whole = whole_of(model)
    return next((f for f in families() if f.claims(whole)), None)


def module_of(model: Any) -> str:
    return type(model).__module__ or ""


def preset_for_class(path: str) -> str | None:
    """The preprocessing preset of a pickled model whose class lives under ``path`` (a dotted module)."""
    return next((f.preset for f in families() if f.preset and any(path.startswith(f"{m}.") or path == m
                                                                for m in f.modules)), None)


@functools.cache
def output_kinds() -> dict[str, str]:
    """Raw output names the families add to the ``detect`` task's own."""
    kinds: dict[str, str] = {}
    for f in families():
        kinds.update(f.outputs)
    return kinds


def names() -> str:
    """The families' names, for messages ("A, B or C")."""
    listed = [f.name for f in families()]
    return ", ".join(listed[:-1]) + f" or {listed[-1]}" if len(listed) > 1 else "".join(listed)
