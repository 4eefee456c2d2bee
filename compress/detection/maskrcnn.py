"""The Mask R-CNN family (torchvision ``MaskRCNN``): Faster R-CNN's raw outputs plus the mask branch's.

The raw network runs the Faster R-CNN path of ``compress.detection.torchvision_raw`` (RPN head, box head and
predictor on fixed RoIs) and the mask branch as ``RoIHeads`` runs it at test time: ``mask_roi_pool`` at
as many boxes per image as the detector keeps (``detections_per_img``; fixed boxes here, as the box branch's,
because the detections depend on the data), then ``mask_head`` and ``mask_predictor``. Its output
``mask_logits`` holds one sigmoid score per mask pixel and class, ``(N, boxes x H x W, classes)``, so
the ``detect`` task distils it as a sigmoid score output. The RoI pooling is glue left as it is: the FPN
channels it reads are protected, the mask head's own channels are pruned and proved on the pooled features.

mAP reads the whole detector's boxes (``MaskRCNN`` returns boxes, scores and labels, with masks beside).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from compress.detection.base import per_location
from compress.detection.family import Family, module_of
from compress.detection.torchvision_raw import FasterRCNNRaw, FixedRoIs
from compress.errors import UsageError


class MaskRCNNRaw(FasterRCNNRaw):
    def __init__(self, detector: nn.Module):
        super().__init__(detector)
        self.mask_rois = FixedRoIs(int(detector.roi_heads.detections_per_img))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(x)
        out = self.heads(features, x)
        heads = self.roi_heads
        pooled = self.mask_rois(heads.mask_roi_pool, features, x)
        logits = heads.mask_predictor(heads.mask_head(pooled))  # (N x boxes, classes, H, W)
        classes = heads.mask_predictor.mask_fcn_logits.out_channels
        out["mask_logits"] = per_location(logits, classes).reshape(x.shape[0], -1, classes)
        return out


def _claims(model: nn.Module) -> bool:
    return module_of(model).startswith("torchvision.models.detection") and type(model).__name__ == "MaskRCNN"


def wrap(detector: nn.Module) -> nn.Module:
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

    heads = detector.roi_heads
    for part, cls in ((heads.box_predictor, FastRCNNPredictor), (heads.mask_predictor, MaskRCNNPredictor)):
        if type(part) is not cls:
            raise UsageError(f"{type(part).__name__} as a Mask R-CNN predictor is not supported",
                             f"use torchvision's {cls.__name__}")
    return MaskRCNNRaw(detector)


FAMILY = Family("torchvision Mask R-CNN", claims=_claims, wrap=wrap, outputs={"mask_logits": "sigmoid"})
