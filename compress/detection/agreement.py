"""Label-free mAP of a pruned detector against the original's own detections (torchmetrics).

Both whole detectors (``raw.detector``: decoding, NMS) run on the same held-out images, un-normalised
back to [0, 1] with the run's preprocessing; the original's boxes scoring at least ``SCORE_THRESHOLD``
are the ground truth, the student's detections (with their scores) the predictions, and torchmetrics'
``MeanAveragePrecision`` (COCO protocol, pycocotools backend) computes mAP@0.5 and mAP@0.5:0.95.
Where the original keeps no box at that threshold (random weights) the figures are None, said so.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

SCORE_THRESHOLD = 0.3  # the original's boxes that count as ground truth
MAP50, MAP, BOXES = "map50_vs_original", "map_vs_original", "original_boxes"  # the summary keys (RunSummary.task_figures)
BATCH = 16


def _images(x: torch.Tensor, mean, std) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x * s + m).clamp(0, 1)


@torch.no_grad()
def detections(raw: nn.Module, x: torch.Tensor, mean, std) -> list[dict[str, torch.Tensor]]:
    """The whole detector's boxes, scores and labels per image of the preprocessed batch ``x``."""
    from compress.detection.family import family_of, listed_images

    family = family_of(raw)
    return (family.detections if family is not None else listed_images)(raw.detector.eval(), _images(x, mean, std))


def _batches(images: Any):
    if isinstance(images, torch.Tensor):
        return (images[i:i + BATCH] for i in range(0, images.shape[0], BATCH))
    return (b[0] if isinstance(b, (list, tuple)) else b for b in images)


def map_vs_original(student: nn.Module, teacher: nn.Module, images: Any, mean, std,
                    score: float = SCORE_THRESHOLD, detect: Any = None) -> dict[str, Any]:
    """``{MAP50, MAP, BOXES}`` (mAP@0.5, mAP@0.5:0.95, the original's boxes) over ``images`` (tensor or batches);
    ``detect(model, x)`` decodes a preprocessed batch (default: the whole detector, :func:`detections`)."""
    from torchmetrics.detection import MeanAveragePrecision

    if detect is None:
        detect = lambda model, x: detections(model, x, mean, std)  # noqa: E731
    metric = MeanAveragePrecision(iou_type="bbox", backend="pycocotools")
    boxes = 0
    for x in _batches(images):
        targets = [{"boxes": d["boxes"][d["scores"] >= score], "labels": d["labels"][d["scores"] >= score]}
                   for d in detect(teacher, x)]
        boxes += sum(int(t["boxes"].shape[0]) for t in targets)
        metric.update(detect(student, x), targets)
    if boxes == 0:
        return {MAP50: None, MAP: None, BOXES: 0}
    result = metric.compute()
    return {MAP50: round(float(result["map_50"]), 4), MAP: round(float(result["map"]), 4), BOXES: boxes}
