"""Object detection on a detector's raw head outputs (``compress.detection``: torchvision, YOLO).

The raw-output network returns a dict of ``(N, locations, K)`` tensors whose kind is known by name
(:data:`OUTPUT_KINDS`): class scores read through a softmax over K (``class_logits``: SSD, the Faster
R-CNN box predictor; class 0 is the background), class scores read through a sigmoid per class
(``cls_logits``, ``objectness``, ``bbox_ctrness``), and box regressions (anchor deltas, FCOS distances,
YOLO's DFL bins). No decoding, anchors or NMS run here: they are outside the raw network.

- Distillation, per output kind: KL over K against the teacher's softmax (at the temperature), binary
  cross-entropy against the teacher's sigmoid probabilities (plus the same at T = 1 weighted by the larger
  of the two probabilities, so the few objects weigh as much as the many background entries), and for
  boxes a smooth-L1 weighted by the teacher's confidence at the same locations (its best foreground
  probability in the score output of the same ``(N, locations)``), so boxes the teacher does not believe in do not steer the student.
- Label-free agreement (documented raw-output agreement; boxes are not decoded in the raw network): at
  each image's ``TOP_K`` locations where the teacher is most confident (score output first in the dict),
  the fraction where the student's best class equals the teacher's, weighted equally per image; its KL
  figure is the mean distillation divergence of the class scores.
- mAP@0.5 and mAP@0.5:0.95 of the whole student detector (decoding, NMS) against the original's boxes on
  the held-out images, by torchmetrics (``Task.extra_figures``, ``compress.detection.agreement``):
  ``map50_vs_original`` / ``map_vs_original`` in the summary.
- Labelled mAP (``--eval DIR``: boxes in YOLO txt or COCO JSON, read by ``compress.calibrate.boxes``):
  the whole detector's decoded boxes (``labelled_output``) against the labels, mAP@0.5 as the task's metric
  (``map50_before`` / ``map50_pruned`` / ``map50_recovered``) and mAP@0.5:0.95 of the original and the model
  the run writes (``map_before`` / ``map_after``), by torchmetrics. It needs a detector whose decoding
  compress runs (``raw.detector``, decoded as its family says: ``compress.detection.family``); other
  raw-output models are refused with the reason.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from compress.detection.agreement import BOXES, MAP, MAP50, SCORE_THRESHOLD, detections
from compress.detection.family import names, output_kinds
from compress.errors import UsageError
from compress.tasks.base import Meter, Task

OUTPUT_KINDS = {
    "class_logits": "softmax", "cls_logits": "sigmoid", "objectness": "sigmoid", "bbox_ctrness": "sigmoid",
    "bbox_regression": "box", "rpn_bbox_deltas": "box", "box_regression": "box", "box_distribution": "box",
}
TOP_K = 100  # teacher-confident locations per image the agreement reads
BOX_WEIGHT = 1.0
FOCUS = 1.0  # weight of the confidence-weighted BCE on sigmoid scores (_focused_bce)
DISTILL_LR = 0.05  # distillation's peak learning rate for detectors unless one is given
AUTO_SAMPLES = 51_200  # augmented images of the automatic recovery budget (800 steps of 64): every location is a
# target, as for segmentation. How these three were chosen: benchmarks/RESULTS.md, "Detection: the embedded detector"


def kinds(output: Any) -> dict[str, str]:
    """The kind of each raw output the task reads (:data:`OUTPUT_KINDS`, and those a detector family adds)."""
    if not isinstance(output, dict):
        return {}
    known = {**OUTPUT_KINDS, **output_kinds()}
    return {k: known[k] for k, v in output.items() if k in known and isinstance(v, torch.Tensor)}


def confidence(kind: str, logits: torch.Tensor) -> torch.Tensor:
    """(N, locations): the best foreground probability (softmax: classes 1.., sigmoid: every class)."""
    if kind == "softmax":
        probs = logits.float().softmax(-1)
        return probs[..., 1:].amax(-1) if probs.shape[-1] > 1 else probs[..., 0]
    return logits.float().sigmoid().amax(-1)


def score_outputs(output: dict) -> list[tuple[str, str, torch.Tensor]]:
    return [(k, kind, output[k]) for k, kind in kinds(output).items() if kind != "box"]


class DetectTask(Task):
    name = "detect"
    metric = "map50"
    metric_label = "mAP@0.5"
    agreement_label = f"top-{TOP_K} class agreement with original"
    agreement_column = "det. agreement"
    auto_samples = AUTO_SAMPLES
    distill_lr = DISTILL_LR

    def claims(self, output: Any, example: torch.Tensor) -> bool:
        found = set(kinds(output).values())
        return "box" in found and bool(found - {"box"})

    def primary(self, output: Any) -> torch.Tensor:
        scores = score_outputs(output)
        if not scores:
            raise UsageError("the detector's output has no class scores", f"name them as in {sorted(OUTPUT_KINDS)}")
        return scores[0][2]

    def class_count(self, output: Any) -> int | None:
        """The class scores per location of the widest score output (Faster R-CNN's ``class_logits``, not its
        one-column ``objectness``); softmax outputs count the background as class 0, as their labels do."""
        return max(int(t.shape[-1]) for _, _, t in score_outputs(output)) if score_outputs(output) else None

    def distill_loss(self, student: Any, teacher: Any, temperature: float) -> torch.Tensor:
        T = float(temperature)
        loss = torch.zeros((), device=self.primary(student).device)
        confident: dict[tuple[int, int], torch.Tensor] = {}
        for key, kind in kinds(teacher).items():
            s, t = student[key].float(), teacher[key].float()
            if kind == "softmax":
                ls, lt = F.log_softmax(s / T, -1), F.log_softmax(t / T, -1)
                loss = loss + (lt.exp() * (lt - ls)).sum(-1).mean() * T * T
            elif kind == "sigmoid":
                loss = loss + F.binary_cross_entropy_with_logits(s / T, torch.sigmoid(t / T)) * T * T
                loss = loss + FOCUS * _focused_bce(s, t)
            if kind != "box":
                confident.setdefault(tuple(t.shape[:2]), confidence(kind, t.detach()))
        for key, kind in kinds(teacher).items():
            if kind != "box":
                continue
            s, t = student[key].float(), teacher[key].float()
            w = confident.get(tuple(t.shape[:2]))
            per_loc = F.smooth_l1_loss(s, t, reduction="none").flatten(2).mean(-1)
            if w is None:
                loss = loss + BOX_WEIGHT * per_loc.mean()
            else:
                loss = loss + BOX_WEIGHT * (per_loc * w).sum() / w.sum().clamp_min(1e-6)
        return loss

    def batch_agreement(self, student: Any, teacher: Any) -> torch.Tensor:
        return _top_agreement(self.primary(student), self.primary(teacher), score_outputs(teacher)[0][1]).mean()

    def agreement_meter(self) -> Meter:
        return _Agreement(self)

    def metric_meter(self) -> Meter:
        return _LabelledMAP()

    def labelled(self, folder: str, preprocess, batch_size: int = 256):
        from compress.calibrate.boxes import load_detection

        self._preprocess = preprocess
        self._evaluation = load_detection(folder, preprocess, classes=self.classes)
        return self._evaluation

    def labelled_output(self, model: Any, x: torch.Tensor, output: Any = None) -> Any:
        if not hasattr(model, "detector"):
            raise UsageError(f"labelled detection metrics (--eval) need a detector whose decoding compress runs; "
                             f"{type(model).__name__} returns only raw outputs",
                             "leave out --eval (the label-free agreement with the original is reported), or use a "
                             f"detector of a family compress decodes: {names()}")
        pre = self._preprocess
        return detections(model, x, pre.mean, pre.std)

    def extra_figures(self, original: Any, student: Any, images: Any, preprocess: Any) -> dict[str, Any]:
        """mAP@0.5 and mAP@0.5:0.95 of the whole student detector against the original's boxes
        (``compress.detection.agreement``; needs torchmetrics and pycocotools, the ``detect`` extra), and with
        ``--eval`` the labelled mAP@0.5:0.95 of both (``map_before``, ``map_after``)."""
        if not hasattr(student, "detector") or not hasattr(original, "detector"):
            return {}
        try:
            from compress.detection.agreement import map_vs_original

            out = map_vs_original(student, original, images, preprocess.mean, preprocess.std)
            if getattr(self, "_evaluation", None) is not None:
                for name, model in (("before", original), ("after", student)):
                    meter = _LabelledMAP()
                    for x, y in _pairs(self._evaluation):
                        meter.update(self.labelled_output(model, x), y)
                    out[f"map_{name}"] = round(meter.figures()["map"], 5)
            return out
        except ImportError as err:
            return {MAP50: None, MAP: None, "map_note": f"not measured: {err} (pip install 'compress[detect]')"}

    def summary_rows(self, figures: dict[str, Any], pct) -> list[tuple[str, str, str, str]]:
        rows = []
        if "map_before" in figures:  # with --eval: labelled mAP@0.5:0.95 of the original and the written model
            rows.append(("mAP@0.5:0.95 (eval)", pct(figures["map_before"]), pct(figures["map_after"]), ""))
        if MAP50 in figures:
            rows.append(("mAP@0.5 / 0.5:0.95 vs original's boxes", "100 %", pct(figures[MAP50]),
                         f"{pct(figures[MAP])} at 0.5:0.95; {figures.get(BOXES, 0)} boxes"))
        return rows

    def sweep_columns(self) -> list[tuple[str, str]]:
        return [("mAP@0.5 vs original", MAP50)]

    def sweep_figures(self, figures: dict[str, Any]) -> dict[str, Any]:
        return {MAP50: figures[MAP50]} if MAP50 in figures else {}

    def report_notes(self, figures: dict[str, Any]) -> list[str]:
        if figures.get(MAP50) is None:
            return []
        return [f"compressed detector against the original's boxes (score >= {SCORE_THRESHOLD}, {figures.get(BOXES)} "
                f"boxes on held-out images): mAP@0.5 {figures[MAP50]:.2%}, mAP@0.5:0.95 {figures[MAP]:.2%}"]

    def describe(self, output: Any) -> str:
        if isinstance(output, dict):
            return "dict of " + ", ".join(f"{k} {'x'.join(map(str, v.shape[1:]))}" for k, v in output.items()
                                          if isinstance(v, torch.Tensor))
        return super().describe(output)


def _focused_bce(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """BCE against the teacher's sigmoid probabilities (T = 1) averaged with weights max(p_teacher, p_student):
    the few confident entries (objects) count as much as the many background ones, as a focal loss does."""
    w = torch.maximum(torch.sigmoid(t), torch.sigmoid(s)).detach()
    per = F.binary_cross_entropy_with_logits(s, torch.sigmoid(t), reduction="none")
    return (per * w).sum() / w.sum().clamp_min(1e-6)


def _top_agreement(s: torch.Tensor, t: torch.Tensor, kind: str) -> torch.Tensor:
    """Per image: the fraction of the teacher's ``TOP_K`` most confident locations where the student's best
    class equals the teacher's."""
    conf = confidence(kind, t)
    k = min(TOP_K, conf.shape[1])
    idx = conf.topk(k, dim=1).indices.unsqueeze(-1)
    pick = lambda x: x.float().gather(1, idx.expand(-1, -1, x.shape[-1]))  # noqa: E731
    return (pick(s).argmax(-1) == pick(t).argmax(-1)).float().mean(1)


def _pairs(evaluation, batch: int = 64):
    images, targets = evaluation
    return ((images[i:i + batch], targets[i:i + batch]) for i in range(0, images.shape[0], batch))


class _LabelledMAP(Meter):
    """Labelled mAP of decoded detections (torchmetrics, COCO protocol): ``value()`` is mAP@0.5."""

    def __init__(self):
        self.metric, self.images = None, 0

    def update(self, output, targets) -> None:
        if self.metric is None:  # created with the first labels: the meter exists for unlabelled runs too
            from torchmetrics.detection import MeanAveragePrecision

            self.metric = MeanAveragePrecision(iou_type="bbox", backend="pycocotools")
        self.metric.update(output, list(targets))
        self.images += len(output)

    def figures(self) -> dict[str, float]:
        if not self.images:
            raise ValueError("no images to measure mAP on")
        result = self.metric.compute()
        return {"map50": float(result["map_50"]), "map": float(result["map"])}

    def value(self) -> float:
        return self.figures()["map50"]


class _Agreement(Meter):
    def __init__(self, task: DetectTask):
        self.task, self.values, self.kl_sum = task, [], 0.0

    def update(self, output, reference) -> None:
        kind = score_outputs(reference)[0][1]
        self.values.append(_top_agreement(self.task.primary(output), self.task.primary(reference), kind).cpu())
        n = self.values[-1].numel()
        self.kl_sum += self.task.distill_loss(output, reference, 1.0).item() * n

    def per_image(self) -> torch.Tensor:
        return torch.cat(self.values) if self.values else torch.zeros(0)

    def value(self) -> float:
        return self.per_image().mean().item()

    def kl(self) -> float:
        return self.kl_sum / max(1, self.per_image().numel())
