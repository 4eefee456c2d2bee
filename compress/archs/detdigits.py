"""DetDigitNet: a tiny single-scale detector for the embedded detection demo (digits in 48x48 scenes).

Backbone: conv(3->16, stride 2), conv(16->32, stride 2) and a residual block at 1/4, conv(32->48) and a
residual block (the neck). Heads at stride 4 (12x12 locations), each a conv-BN-ReLU tower and a 1x1
predictor: ``cls_logits`` (one sigmoid score per digit class: a CenterNet-style heatmap whose peaks are
the objects' centres) and ``bbox_regression`` (FCOS-style distances left, top, right, bottom from the
location's centre, in strides, kept non-negative by a ReLU). ``forward`` returns only these raw outputs
as ``(N, locations, K)`` tensors, which the ``detect`` task reads by name (``compress.tasks.detect``).

Decoding (peaks, boxes, NMS) is post-processing outside the network: :func:`decode`, and
``model.detector`` for the whole detector (images in [0, 1] -> boxes, scores, labels per image), which
``compress.detection.agreement`` uses for mAP. Use as ``--arch detdigits``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from compress.archs.digits import ResidualBlock, conv_bn

PREPROCESS = "scenes48"  # 48x48 RGB, ImageNet mean/std
NUM_CLASSES = 10  # digits 0-9 (no background class: scores are sigmoids)
STRIDE = 4
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SCORE, IOU, MAX_DET = 0.05, 0.5, 100  # decoding: lowest score kept, NMS IoU, detections per image


def _per_location(t: torch.Tensor, columns: int) -> torch.Tensor:
    return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1, columns)


class DetDigitNet(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 48, backbone: int = 32):
        super().__init__()
        self.num_classes = num_classes
        self.stem = conv_bn(3, 16, stride=2)
        self.down1 = conv_bn(16, backbone, stride=2)
        self.block1 = ResidualBlock(backbone)
        self.neck = conv_bn(backbone, width)
        self.block2 = ResidualBlock(width)
        self.cls_tower = conv_bn(width, width)
        self.cls_logits = nn.Conv2d(width, num_classes, 1)
        self.box_tower = conv_bn(width, width)
        self.bbox_reg = nn.Conv2d(width, 4, 1)
        nn.init.constant_(self.cls_logits.bias, -2.19)  # prior probability 0.1, as focal-loss detectors start

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = self.block1(F.relu(self.down1(x)))
        return self.block2(F.relu(self.neck(x)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        cls = self.cls_logits(F.relu(self.cls_tower(f)))
        box = F.relu(self.bbox_reg(F.relu(self.box_tower(f))))
        return {"cls_logits": _per_location(cls, self.num_classes), "bbox_regression": _per_location(box, 4)}

    def postprocess(self, out: dict[str, torch.Tensor], image_size: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
        """Decoding + NMS of raw outputs (:func:`decode`): what ``compress bench`` times apart from the network."""
        return decode(out, image_size)

    @property
    def detector(self) -> "WholeDetector":
        """The whole detector (normalising, this network, :func:`decode`) sharing this network's layers."""
        return WholeDetector(self)


class WholeDetector:
    """Images in [0, 1] (a list or an (N, 3, H, W) tensor) -> ``[{"boxes", "scores", "labels"}]`` per image."""

    def __init__(self, net: nn.Module):
        self.net = net

    def eval(self) -> "WholeDetector":
        self.net.eval()
        return self

    @torch.no_grad()
    def __call__(self, images) -> list[dict[str, torch.Tensor]]:
        x = torch.stack(list(images)) if not isinstance(images, torch.Tensor) else images
        mean = torch.tensor(MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return decode(self.net((x - mean) / std), tuple(x.shape[-2:]))


@torch.no_grad()
def decode(out: dict[str, torch.Tensor], image_size: tuple[int, int], score: float = SCORE, iou: float = IOU,
           max_det: int = MAX_DET) -> list[dict[str, torch.Tensor]]:
    """Raw outputs -> detections per image: heatmap peaks (3x3 local maxima) above ``score``, the best
    ``max_det``, their boxes from the distances at the peak, then class-wise NMS at ``iou``."""
    from torchvision.ops import batched_nms

    h, w = image_size[0] // STRIDE, image_size[1] // STRIDE
    logits, dist = out["cls_logits"].float(), out["bbox_regression"].float()
    n, _, classes = logits.shape
    heat = logits.sigmoid().reshape(n, h, w, classes).permute(0, 3, 1, 2)
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    centres = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1).to(dist.device).add(0.5).mul(STRIDE)  # (L, 2)
    results = []
    for i in range(n):
        flat = peaks[i].reshape(classes, -1)  # (C, L)
        scores, idx = flat.reshape(-1).topk(min(max_det, flat.numel()))
        keep = scores >= score
        scores, idx = scores[keep], idx[keep]
        labels, loc = idx // flat.shape[1], idx % flat.shape[1]
        d = dist[i, loc] * STRIDE
        c = centres[loc]
        boxes = torch.stack([c[:, 0] - d[:, 0], c[:, 1] - d[:, 1], c[:, 0] + d[:, 2], c[:, 1] + d[:, 3]], 1)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, image_size[1])
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, image_size[0])
        kept = batched_nms(boxes, scores, labels, iou)
        results.append({"boxes": boxes[kept].cpu(), "scores": scores[kept].cpu(), "labels": labels[kept].cpu()})
    return results


def detdigitnet(num_classes: int = NUM_CLASSES, width: int = 48, backbone: int = 32) -> DetDigitNet:
    """The detection demo network (0.12 M parameters at the defaults)."""
    return DetDigitNet(num_classes=num_classes, width=width, backbone=backbone)
