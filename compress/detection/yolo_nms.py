"""Ultralytics detections (decoded head output + the library's own NMS) as torchmetrics-style dicts."""

from __future__ import annotations

import torch
import torch.nn as nn

CONF, IOU, MAX_DET = 0.001, 0.7, 100  # Ultralytics' validation settings


def is_yolo(model: nn.Module) -> bool:
    return type(model).__module__.startswith("ultralytics")


@torch.no_grad()
def yolo_detections(model: nn.Module, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    from ultralytics.utils.nms import non_max_suppression

    out = model(images)
    decoded = out[0] if isinstance(out, (list, tuple)) else out
    if isinstance(decoded, (list, tuple)):  # Segment: (detections with mask coefficients, prototypes)
        decoded = decoded[0]
    nc = model.model[-1].nc
    kept = non_max_suppression(decoded, CONF, IOU, max_det=MAX_DET, nc=nc)
    return [{"boxes": k[:, :4].cpu(), "scores": k[:, 4].cpu(), "labels": k[:, 5].long().cpu()} for k in kept]
