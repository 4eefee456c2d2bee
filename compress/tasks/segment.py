"""Semantic segmentation: dense logits (N, classes, H, W), e.g. torchvision's {"out": ..., "aux": ...}.

- Distillation: per-pixel KL over the class axis at the temperature, averaged over pixels, for the
  primary map and (weighted ``AUX_WEIGHT``, as torchvision trains them) every other map.
- Label-free agreement: mIoU of the student's argmax against the original's argmax on held-out images
  (one confusion matrix over all pixels; classes that neither predicts are left out), with each image's
  pixel agreement for the paired selection test of recovery.
- Labelled metric: mIoU against ``--eval`` masks (``images/`` + ``masks/``, 255 = ignore).
"""

from __future__ import annotations

from typing import Any

import torch

from compress.tasks.base import Meter, Task, first_output, flatten_outputs, kl_per_position

AUX_WEIGHT = 0.5  # the weight torchvision's segmentation recipes give the auxiliary classifier's loss
DISTILL_LR = 0.05  # SegDigitNet --ratio 0.5, 356 steps: 0.05 reached 94.2 % mIoU vs the original, 0.01 91.0 %
AUTO_SAMPLES = 36_000  # augmented images of the automatic recovery budget: every pixel is a target, so far
# fewer images than a classifier's 216k are needed (measured in benchmarks/RESULTS.md, "Segmentation")


class SegmentTask(Task):
    name = "segment"
    metric = "miou"
    metric_label = "mIoU"
    agreement_label = "mIoU vs original"
    agreement_column = "mIoU vs original"
    auto_samples = AUTO_SAMPLES
    distill_lr = DISTILL_LR

    def claims(self, output: Any, example: torch.Tensor) -> bool:
        out = first_output(output)
        return out.dim() == 4 and out.shape[1] >= 2 and out.is_floating_point()

    def claims_auto(self, output: Any, example: torch.Tensor) -> bool:
        """Strong evidence only: a known segmenter's ``out`` (torchvision's dict), or class maps at the input's
        own resolution. A coarser dense map (a detector head's per-cell values) is not guessed to be classes."""
        if not self.claims(output, example):
            return False
        known = isinstance(output, dict) and isinstance(output.get("out"), torch.Tensor)
        return known or tuple(first_output(output).shape[-2:]) == tuple(example.shape[-2:])

    def distill_loss(self, student: Any, teacher: Any, temperature: float) -> torch.Tensor:
        T = float(temperature)
        s_main, t_main = self.primary(student), self.primary(teacher)
        loss = kl_per_position(s_main, t_main, T).mean()
        for s, t in zip(flatten_outputs(student), flatten_outputs(teacher)):
            if s is not s_main and s.dim() >= 2 and s.is_floating_point():
                loss = loss + AUX_WEIGHT * kl_per_position(s, t, T).mean()
        return loss * (T * T)

    def agreement_meter(self) -> Meter:
        return _Agreement(self)

    def metric_meter(self) -> Meter:
        return _LabelledIoU(self)

    def labelled(self, folder: str, preprocess, batch_size: int = 256):
        from compress.calibrate.masks import load_segmentation

        return load_segmentation(folder, preprocess, classes=self.classes)


def confusion(pred: torch.Tensor, ref: torch.Tensor, classes: int, ignore: int = 255) -> torch.Tensor:
    """classes x classes counts (rows: reference, columns: prediction), ignored pixels left out."""
    pred, ref = pred.reshape(-1).long().cpu(), ref.reshape(-1).long().cpu()
    keep = (ref != ignore) & (ref >= 0) & (ref < classes)
    idx = ref[keep] * classes + pred[keep].clamp(0, classes - 1)
    return torch.bincount(idx, minlength=classes * classes).reshape(classes, classes).double()


def miou(conf: torch.Tensor) -> float:
    """Mean IoU over the classes present in the reference or the prediction."""
    inter = conf.diag()
    union = conf.sum(0) + conf.sum(1) - inter
    present = union > 0
    return float((inter[present] / union[present]).mean()) if present.any() else 1.0


class _Confusion(Meter):
    def __init__(self, task: Task):
        self.task, self.conf = task, None

    def _add(self, pred: torch.Tensor, ref: torch.Tensor, classes: int) -> None:
        c = confusion(pred, ref, classes)
        self.conf = c if self.conf is None else self.conf + c

    def value(self) -> float:
        if self.conf is None:
            raise ValueError("no images to measure mIoU on")
        return miou(self.conf)


class _Agreement(_Confusion):
    def __init__(self, task: Task):
        super().__init__(task)
        self.pixels, self.kl_sum = [], 0.0

    def update(self, output, reference) -> None:
        s, t = self.task.primary(output), self.task.primary(reference)
        ps, pt = s.argmax(1), t.argmax(1)
        self._add(ps, pt, s.shape[1])
        self.pixels.append((ps == pt).flatten(1).float().mean(1).cpu())
        self.kl_sum += kl_per_position(s, t).flatten(1).mean(1).sum().item()

    def per_image(self) -> torch.Tensor:
        return torch.cat(self.pixels) if self.pixels else torch.zeros(0)

    def kl(self) -> float:
        return self.kl_sum / max(1, self.per_image().numel())


class _LabelledIoU(_Confusion):
    def update(self, output, masks) -> None:
        out = self.task.primary(output)
        self._add(out.argmax(1), masks, out.shape[1])
