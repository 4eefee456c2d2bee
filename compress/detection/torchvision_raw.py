"""The torchvision detector family: raw-output networks of SSD/SSDlite, FCOS, RetinaNet, Faster R-CNN.

Each runs the detector's own layers in the order its forward does, from the preprocessed (normalised,
resized) batch, and reshapes head outputs as torchvision does (``(N, locations x anchors, K)``, levels
concatenated); ``tests/test_detect.py`` checks every output against the detector's own head call.
Not run here: ``transform`` (normalising and resizing: compress's preprocessing does it), anchor
generation, box decoding, NMS.

Faster R-CNN's second stage pools features at the RPN's proposals, which depend on the data. The raw
network pools at a fixed set of boxes instead (:class:`FixedRoIs`: as many as the RPN keeps at test time,
spread over positions and sizes so every FPN level is read) through the model's own ``box_roi_pool``,
which is glue left as it is: the features it reads are protected, the box head and predictor behind it
are pruned and proved on those pooled features.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from compress.detection.base import RawDetector, per_location
from compress.detection.family import Family, module_of
from compress.errors import UsageError


class SSDRaw(RawDetector):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = list(self.backbone(x).values())
        cls_head, reg_head = self.head.classification_head, self.head.regression_head
        return {"class_logits": torch.cat([per_location(m(f), cls_head.num_columns)
                                           for m, f in zip(cls_head.module_list, feats)], 1),
                "bbox_regression": torch.cat([per_location(m(f), 4) for m, f in zip(reg_head.module_list, feats)], 1)}


class FCOSRaw(RawDetector):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = list(self.backbone(x).values())
        cls, reg = self.head.classification_head, self.head.regression_head
        logits, boxes, ctr = [], [], []
        for f in feats:
            logits.append(per_location(cls.cls_logits(cls.conv(f)), cls.num_classes))
            t = reg.conv(f)
            boxes.append(per_location(nn.functional.relu(reg.bbox_reg(t)), 4))
            ctr.append(per_location(reg.bbox_ctrness(t), 1))
        return {"cls_logits": torch.cat(logits, 1), "bbox_regression": torch.cat(boxes, 1),
                "bbox_ctrness": torch.cat(ctr, 1)}


class RetinaNetRaw(RawDetector):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = list(self.backbone(x).values())
        cls, reg = self.head.classification_head, self.head.regression_head
        return {"cls_logits": torch.cat([per_location(cls.cls_logits(cls.conv(f)), cls.num_classes) for f in feats], 1),
                "bbox_regression": torch.cat([per_location(reg.bbox_reg(reg.conv(f)), 4) for f in feats], 1)}


class FixedRoIs(nn.Module):
    """Glue: the detector's RoI pooling at ``count`` fixed boxes per image (spread over positions and
    sizes). Its forward reads the batch size as a number, so torch.fx keeps it as an opaque leaf and
    the channels it reads are protected."""

    def __init__(self, count: int):
        super().__init__()
        self.count = count

    def boxes(self, height: int, width: int) -> torch.Tensor:
        """``count`` boxes (x1, y1, x2, y2) from a low-discrepancy sequence: plain arithmetic, so exporters
        record it as constants-free ops (no random generator in the graph)."""
        i = torch.arange(1, self.count + 1, dtype=torch.float32)
        u = [torch.frac(i * a) for a in (0.6180339887, 0.7548776662, 0.5698402910, 0.4301597090)]
        side = torch.exp(2.5 + 3.5 * u[0])  # ~12..400 px
        aspect = torch.exp(1.4 * u[1] - 0.7)
        w, h = (side * aspect).clamp(4, width), (side / aspect).clamp(4, height)
        cx, cy = u[2] * width, u[3] * height
        x1, y1 = (cx - w / 2).clamp(0, width - 4), (cy - h / 2).clamp(0, height - 4)
        return torch.stack([x1, y1, (x1 + w).clamp(max=width), (y1 + h).clamp(max=height)], 1)

    def forward(self, pool: nn.Module, features: dict, x: torch.Tensor) -> torch.Tensor:
        n, height, width = int(x.shape[0]), int(x.shape[-2]), int(x.shape[-1])
        boxes = self.boxes(height, width).to(x.device, x.dtype)
        return pool(features, [boxes] * n, [(height, width)] * n)


class FasterRCNNRaw(RawDetector):
    def __init__(self, detector: nn.Module):
        super().__init__(detector)
        self.fixed_rois = FixedRoIs(int(detector.rpn._post_nms_top_n["testing"]))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads(self.backbone(x), x)

    def heads(self, features: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The RPN head's and the box branch's raw outputs from the backbone's ``features`` of ``x``."""
        objectness, deltas = self.rpn.head(list(features.values()))
        pooled = self.fixed_rois(self.roi_heads.box_roi_pool, features, x)
        hidden = self.roi_heads.box_head(pooled).flatten(1)
        predictor = self.roi_heads.box_predictor
        n = x.shape[0]  # per image: (N, boxes, classes), (N, boxes, classes x 4)
        return {"objectness": torch.cat([per_location(o, 1) for o in objectness], 1),
                "rpn_bbox_deltas": torch.cat([per_location(d, 4) for d in deltas], 1),
                "class_logits": predictor.cls_score(hidden).reshape(n, -1, predictor.cls_score.out_features),
                "box_regression": predictor.bbox_pred(hidden).reshape(n, -1, predictor.bbox_pred.out_features)}


def wrap(detector: nn.Module) -> nn.Module:
    from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    if isinstance(detector, FasterRCNN) and type(detector).__name__ == "FasterRCNN":
        if type(detector.roi_heads.box_predictor) is not FastRCNNPredictor:
            raise UsageError(f"{type(detector.roi_heads.box_predictor).__name__} as a Faster R-CNN box predictor "
                             "is not supported", "use torchvision's FastRCNNPredictor")
        return FasterRCNNRaw(detector)
    for cls, raw in ((SSD, SSDRaw), (FCOS, FCOSRaw), (RetinaNet, RetinaNetRaw)):
        if isinstance(detector, cls):
            return raw(detector)
    if isinstance(detector, nn.Module) and type(detector).__module__.startswith("torchvision.models.detection"):
        if hasattr(detector, "backbone") and hasattr(detector, "transform"):
            raise UsageError(f"torchvision {type(detector).__name__} is not supported as a detector",
                             "compress handles SSD/SSDlite, FCOS, RetinaNet and Faster R-CNN")
    return detector


FAMILY = Family("torchvision", claims=lambda m: module_of(m).startswith("torchvision.models.detection"), wrap=wrap)
