"""The Ultralytics family: YOLO detection and segmentation models (the ``compress[yolo]`` extra).

The network runs the model's layers as ``DetectionModel._predict_once`` does (each layer's inputs picked
by its ``f`` indices) and, for the last layer (Detect / Segment), its ``forward_head`` only: the raw box
distribution (``4 x reg_max`` DFL bins per location) and class logits, plus mask coefficients and
prototypes for Segment. Decoding (anchors, DFL expectation, strides) and NMS stay outside: they are the
model's own glue, unchanged. Outputs are ``(N, locations, K)`` (``proto``: ``(N, masks, H, W)``).

C2f/C3k2's ``list(x.chunk(2, 1))`` is traced by ``compress.graph.iterable``; attention blocks (PSA,
C2PSA's ``Attention``) are traced as plain ops, and whatever the graph does not know is protected.

Detections for mAP: the decoded head output through the library's own NMS at its validation settings.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from compress.detection.base import RawDetector
from compress.detection.family import Family, module_of
from compress.errors import UsageError

PREPROCESS = "yolo"  # Ultralytics models read RGB in [0, 1], not normalised (images are resized, not letterboxed)
CONF, IOU, MAX_DET = 0.001, 0.7, 100  # NMS at Ultralytics' validation settings


class YOLORaw(RawDetector):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        layers = list(self.model)
        saved = set(self._detector.save)
        y: list = []
        for m in layers[:-1]:
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x if m.i in saved else None)
        head = layers[-1]
        feats = [x if j == -1 else y[j] for j in head.f]
        parts = head.one2one if head.end2end else head.one2many
        preds = head.forward_head(feats, **parts)
        out = {"box_distribution": preds["boxes"].permute(0, 2, 1), "cls_logits": preds["scores"].permute(0, 2, 1)}
        if "mask_coefficient" in preds:
            out["mask_coefficient"] = preds["mask_coefficient"].permute(0, 2, 1)
        if hasattr(head, "proto"):
            out["proto"] = head.proto(feats[0])
        return out


def wrap(model: nn.Module) -> nn.Module:
    from ultralytics.nn.modules.head import Detect
    from ultralytics.nn.tasks import DetectionModel

    if not isinstance(model, DetectionModel):
        return model  # classification, pose, OBB...: not handled as detectors
    head = model.model[-1]
    if type(head).__name__ not in ("Detect", "Segment") or not isinstance(head, Detect):
        raise UsageError(f"Ultralytics {type(head).__name__} heads are not supported",
                         "compress handles YOLO Detect and Segment models")
    return YOLORaw(model.float())  # checkpoints are often saved in half precision


@torch.no_grad()
def detections(model: nn.Module, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    from ultralytics.utils.nms import non_max_suppression

    out = model(images)
    decoded = out[0] if isinstance(out, (list, tuple)) else out
    if isinstance(decoded, (list, tuple)):  # Segment: (detections with mask coefficients, prototypes)
        decoded = decoded[0]
    kept = non_max_suppression(decoded, CONF, IOU, max_det=MAX_DET, nc=model.model[-1].nc)
    return [{"boxes": k[:, :4].cpu(), "scores": k[:, 4].cpu(), "labels": k[:, 5].long().cpu()} for k in kept]


def build(cfg: str = "yolov8n.yaml", nc: int = 80, weights: str | None = None) -> nn.Module:
    """An Ultralytics detection model from its yaml (offline, random init), optionally with ``weights``
    (a state dict file); the factory for ``--arch compress.detection.yolo:build --arch-kwargs cfg=yolo11n.yaml``."""
    import os

    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.nn.tasks import DetectionModel, SegmentationModel

    cls = SegmentationModel if "-seg" in str(cfg) else DetectionModel
    model = cls(cfg, nc=nc, verbose=False)
    if weights:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()


FAMILY = Family("Ultralytics", claims=lambda m: module_of(m).startswith("ultralytics"), wrap=wrap,
                detections=detections, modules=("ultralytics",), preset=PREPROCESS)
