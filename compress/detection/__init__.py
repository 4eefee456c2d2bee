"""Detectors as raw-output networks: what compress prunes, proves and exports of a detection model.

A detector's whole forward cannot be traced (image transforms, anchors, box decoding, NMS, per-image
loops). :func:`raw_network` wraps a recognised detector in a module whose forward runs only the traceable
parts -- backbone, FPN/neck, the heads' conv towers and predictors -- and returns the raw head outputs as a
dict (class scores, box regressions: see :data:`compress.tasks.detect.OUTPUT_KINDS`). The wrapper holds the
detector's own submodules under their own names, so its state dict is the detector's (a checkpoint loads
strictly, a pruned folder reloads by replaying the cuts), and every cut reaches the detector, whose
untraced glue is left as it is: ``wrapper.detector`` is the whole (pruned) detection model.

Recognised: torchvision SSD/SSDlite, FCOS, RetinaNet, Faster R-CNN (``compress.detection.torchvision_raw``)
and Ultralytics YOLO detection/segmentation models (``compress.detection.yolo``). Any other model is
returned unchanged.
"""

from __future__ import annotations

import torch.nn as nn


def raw_network(model: nn.Module) -> nn.Module:
    """``model``'s raw-output network when it is a recognised detector, else ``model`` itself."""
    module = type(model).__module__ or ""
    if module.startswith("torchvision.models.detection"):
        from compress.detection.torchvision_raw import wrap

        return wrap(model)
    if module.startswith("ultralytics"):
        from compress.detection.yolo import wrap as wrap_yolo

        return wrap_yolo(model)
    return model


def is_raw_network(model: nn.Module) -> bool:
    from compress.detection.base import RawDetector

    return isinstance(model, RawDetector)


__all__ = ["is_raw_network", "raw_network"]
