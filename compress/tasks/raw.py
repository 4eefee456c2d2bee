"""Any network whose outputs are tensors (``--task raw``): nothing is assumed of what they mean.

- Importance: random gradients on every float output (as every task).
- Distillation: a scale-free regression per output tensor, the squared error divided by the teacher's
  variance of each channel (axis 1, over the batch and the other axes; linear beyond one spread, Huber),
  averaged over the outputs, so 80 class channels and 4 box channels weigh by their signal, not their count
  or units.
- Label-free figures against the original on held-out images: the relative output error
  ``||student - original|| / ||original||`` over every output, and the cosine similarity of each image's
  outputs (also the per-image figure recovery selects on, and the summary's agreement).
- With ``--decode FILE.py:fn`` (``compress.detection.user``): a detector of the user's own. Its decoded
  boxes give the mAP@0.5 / 0.5:0.95 against the original's boxes and, with ``--eval`` (YOLO txt or COCO JSON,
  ``compress.calibrate.boxes``), the labelled mAP, as the built-in detector families get.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from compress.detection.agreement import MAP, MAP50, _batches
from compress.errors import UsageError
from compress.tasks.base import Meter, Task, flatten_outputs

REL_ERROR, COSINE = "rel_error_vs_original", "cosine_vs_original"  # summary keys (RunSummary.task_figures)
FLOOR = 1e-2  # a channel's variance floor, as a fraction of its own mean square (a near-constant channel is
# then judged relative to its magnitude, not blown up by its tiny spread)


def _floats(output: Any) -> list[torch.Tensor]:
    return [t for t in flatten_outputs(output) if t.is_floating_point()]


def normalised_mse(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Mean of (s - t)^2 / var_c(t): the teacher's variance of each channel (axis 1) over every other axis, floored
    at ``FLOOR`` times the channel's mean square; an error beyond one spread counts linearly (Huber), so a student
    far off (a random network's first steps) takes bounded steps."""
    s, t = s.float(), t.float().detach()
    if t.dim() < 2:
        s, t = s.reshape(-1, 1), t.reshape(-1, 1)
    dims = [0, *range(2, t.dim())]
    var = t.var(dim=dims, unbiased=False, keepdim=True)
    var = torch.maximum(var, FLOOR * (t ** 2).mean(dim=dims, keepdim=True)) + 1e-12
    r = (s - t) / var.sqrt()  # the error in units of the channel's spread
    return F.smooth_l1_loss(r, torch.zeros_like(r), beta=1.0) * 2  # r^2 where |r| < 1, linear beyond (bounded steps)


def _cosine_per_image(student: Any, teacher: Any) -> torch.Tensor:
    s = torch.cat([x.float().flatten(1) for x in _floats(student)], 1)
    t = torch.cat([x.float().flatten(1) for x in _floats(teacher)], 1)
    return F.cosine_similarity(s, t, dim=1, eps=1e-12)


class RawTask(Task):
    name = "raw"
    metric = "cosine"
    metric_label = "cosine"
    agreement_label = "cosine similarity with original"
    agreement_column = "cosine vs original"
    decoder = None  # compress.detection.user.UserDecoder (--decode), or None

    def claims(self, output: Any, example: torch.Tensor) -> bool:
        return bool(_floats(output))

    def claims_auto(self, output: Any, example: torch.Tensor) -> bool:
        return False  # asked for by name only

    def class_count(self, output: Any) -> int | None:
        return None

    def with_decoder(self, decoder) -> "RawTask":
        """A detector of the user's own: labelled and label-free mAP through ``decoder``."""
        self.decoder = decoder
        self.metric, self.metric_label = "map50", "mAP@0.5"
        return self

    def distill_loss(self, student: Any, teacher: Any, temperature: float) -> torch.Tensor:
        pairs = list(zip(_floats(student), _floats(teacher)))
        return sum(normalised_mse(s, t) for s, t in pairs) / max(len(pairs), 1)

    def batch_agreement(self, student: Any, teacher: Any) -> torch.Tensor:
        return _cosine_per_image(student, teacher).mean()

    def agreement_meter(self) -> Meter:
        return _Cosine(self)

    def metric_meter(self) -> Meter:
        from compress.tasks.detect import _LabelledMAP

        return _LabelledMAP()

    def labelled(self, folder: str, preprocess, batch_size: int = 256):
        if self.decoder is None:
            raise UsageError("--eval with --task raw needs a way to read the outputs as predictions",
                             "add --decode FILE.py:fn for a detector of your own, or leave out --eval (the "
                             "relative error and cosine against the original are reported)")
        from compress.calibrate.boxes import load_detection

        self._evaluation = load_detection(folder, preprocess, classes=None)
        return self._evaluation

    def labelled_output(self, model: Any, x: torch.Tensor, output: Any = None) -> Any:
        if output is not None:
            return self.decoder(output, tuple(x.shape[-2:]), images=x.shape[0])
        return self.decoder.detections(model, x)

    @torch.no_grad()
    def extra_figures(self, original: Any, student: Any, images: Any, preprocess: Any) -> dict[str, Any]:
        diff = norm = 0.0
        cosines = []
        was = (original.training, student.training)
        original.eval(), student.eval()
        try:
            for x in _batches(images):
                t, s = original(x), student(x)
                for a, b in zip(_floats(s), _floats(t)):
                    diff += float(((a.float() - b.float()) ** 2).sum())
                    norm += float((b.float() ** 2).sum())
                cosines.append(_cosine_per_image(s, t))
        finally:
            original.train(was[0]), student.train(was[1])
        out: dict[str, Any] = {REL_ERROR: round((diff / max(norm, 1e-30)) ** 0.5, 5),
                               COSINE: round(float(torch.cat(cosines).mean()), 5)} if cosines else {}
        if self.decoder is not None:
            out.update(self._detection_figures(original, student, images, preprocess))
        return out

    def _detection_figures(self, original, student, images, preprocess) -> dict[str, Any]:
        from compress.tasks.detect import _LabelledMAP, _pairs

        try:
            from compress.detection.agreement import map_vs_original

            out = map_vs_original(student, original, images, preprocess.mean, preprocess.std,
                                  detect=self.decoder.detections)
        except ImportError as err:
            return {MAP50: None, MAP: None, "map_note": f"not measured: {err} (pip install 'compress[detect]')"}
        if getattr(self, "_evaluation", None) is not None:
            for name, model in (("before", original), ("after", student)):
                meter = _LabelledMAP()
                for x, y in _pairs(self._evaluation):
                    meter.update(self.decoder.detections(model, x), y)
                out[f"map_{name}"] = round(meter.figures()["map"], 5)
        return out

    def summary_rows(self, figures: dict[str, Any], pct) -> list[tuple[str, str, str, str]]:
        rows = []
        if REL_ERROR in figures:
            rows.append(("relative output error vs original", "0 %", pct(figures[REL_ERROR]),
                         f"cosine {figures[COSINE]:.4f}"))
        if self.decoder is not None:
            from compress.tasks.detect import DetectTask

            rows += DetectTask().summary_rows(figures, pct)
        return rows

    def sweep_columns(self) -> list[tuple[str, str]]:
        return [("rel. error vs original", REL_ERROR)] + ([("mAP@0.5 vs original", MAP50)] if self.decoder else [])

    def sweep_figures(self, figures: dict[str, Any]) -> dict[str, Any]:
        return {k: figures[k] for k in (REL_ERROR, MAP50) if k in figures}

    def report_notes(self, figures: dict[str, Any]) -> list[str]:
        notes = []
        if REL_ERROR in figures:
            notes.append(f"raw outputs against the original's on held-out images: relative error "
                         f"{figures[REL_ERROR]:.2%}, cosine similarity {figures[COSINE]:.4f}")
        if self.decoder is not None:
            from compress.tasks.detect import DetectTask

            notes += DetectTask().report_notes(figures)
        return notes


class _Cosine(Meter):
    """Per image: the cosine similarity of its outputs with the original's; ``kl()``: the distillation loss."""

    def __init__(self, task: RawTask):
        self.task, self.values, self.loss_sum = task, [], 0.0

    def update(self, output, reference) -> None:
        self.values.append(_cosine_per_image(output, reference).cpu())
        self.loss_sum += float(self.task.distill_loss(output, reference, 1.0)) * self.values[-1].numel()

    def per_image(self) -> torch.Tensor:
        return torch.cat(self.values) if self.values else torch.zeros(0)

    def value(self) -> float:
        return self.per_image().mean().item()

    def kl(self) -> float:
        return self.loss_sum / max(1, self.per_image().numel())
