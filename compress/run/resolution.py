"""The free alternative to a cut: the untouched original run at a smaller input size.

A deployment engineer's first try is to feed the original smaller images; it costs nothing. For a model
whose input size can change (convolutional classifiers, segmenters, detectors) this module finds the size
whose MACs (``compress.prune.profile``) are closest to a given count, rounded to a multiple of 8 (or 32
where the model needs it: a forward pass at the size is the test), and measures the original there against
itself at full size, on the same full-size images resized down inside :class:`AtSize`:

- classification: class predictions compared (the task's agreement meter) and top-1 with ``--eval``;
- segmentation: the masks upsampled back to the full size before comparing (agreement, mIoU);
- detection: the decoded boxes scaled back to the full size (mAP@0.5 against the original's own boxes,
  labelled mAP@0.5 with ``--eval``); the raw per-location agreement has no meaning across sizes.

A model that cannot run smaller (a ViT with fixed position embeddings) is skipped with the reason.
:func:`figures` returns the plain dict that ``summary.json`` keeps under :data:`KEY`; :func:`summary_rows`
and :func:`verdict` show it.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from compress.errors import UsageError
from compress.prune.profile import count_macs
from compress.recover import agreement, image_batches
from compress.tasks.evaluate import labelled_metric, labelled_pairs

KEY = "smaller_input"  # summary.json: the original at the input size of equal MACs
MULTIPLES = (8, 32)  # the side rounding tried, finest first
BATCH = 32


class AtSize(nn.Module):
    """``model`` fed full-size images resized to ``size`` (H, W) (bilinear, antialiased); a 4-D output at the
    small size (a segmenter's masks) is upsampled back to the input's size, so that it compares with the
    original at full size pixel for pixel. Classifier logits pass through."""

    def __init__(self, model: nn.Module, size: tuple[int, int]):
        super().__init__()
        self.model, self.size = model, (int(size[0]), int(size[1]))

    def forward(self, x: torch.Tensor) -> Any:
        full = tuple(x.shape[-2:])
        return _back(self.model(resize(x, self.size)), full)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def resize_images(images: Any, size: tuple[int, int]) -> Any:
    """A preloaded image tensor at ``size``; a loader of batches is resized batch by batch as it is read."""
    if isinstance(images, torch.Tensor):
        return resize(images, size)
    return _Resized(images, size)


class _Resized:
    def __init__(self, batches, size):
        self.batches, self.size = batches, size

    def __iter__(self):
        for b in self.batches:
            if isinstance(b, (list, tuple)):
                yield type(b)([resize(b[0], self.size), *b[1:]])
            else:
                yield resize(b, self.size)

    def __len__(self):
        return len(self.batches)


def _back(output: Any, full: tuple[int, int]) -> Any:
    if isinstance(output, torch.Tensor):
        if output.dim() == 4 and output.is_floating_point() and tuple(output.shape[-2:]) != full:
            return F.interpolate(output, size=full, mode="bilinear", align_corners=False)
        return output
    if isinstance(output, dict):
        return {k: _back(v, full) for k, v in output.items()}
    if isinstance(output, (list, tuple)) and not hasattr(output, "_fields"):
        return type(output)(_back(v, full) for v in output)
    return output


def scaled_side(side: int, scale: float, multiple: int) -> int:
    """``side * scale`` rounded to a multiple of ``multiple`` (at least one multiple, at most ``side``)."""
    return max(multiple, min(side, int(round(side * scale / multiple)) * multiple))


def size_for(input_size: tuple[int, ...], scale: float, multiple: int) -> tuple[int, int]:
    """(H, W) of the input scaled by ``scale`` per side, each rounded to ``multiple``; the full size at 1."""
    _, h, w = input_size
    if scale >= 1:
        return h, w
    return scaled_side(h, scale, multiple), scaled_side(w, scale, multiple)


def macs_at(model: nn.Module, channels: int, size: tuple[int, int]) -> int:
    """MACs of one forward pass at (channels, *size); UsageError when the model cannot run there."""
    return count_macs(model, (channels, *size))


def equal_macs_size(model: nn.Module, input_size: tuple[int, ...], target: int) -> tuple[tuple[int, int], int, int]:
    """((H, W), its MACs, the multiple used): the smaller size whose MACs are closest to ``target``. Sides are
    multiples of 8, or of 32 when the model fails at a size of 8s; UsageError (the model's own words) when
    it runs at no smaller size."""
    c, h, w = input_size
    full = count_macs(model, tuple(input_size))
    scale = math.sqrt(max(target, 1) / max(full, 1))  # MACs of a convolutional net grow with the pixel count
    errors = []
    for multiple in MULTIPLES:
        found = {}
        for step in range(-3, 4):
            size = (max(multiple, min(h, (round(h * scale / multiple) + step) * multiple)), 0)
            size = (size[0], max(multiple, min(w, int(round(w * size[0] / h / multiple)) * multiple)))
            if size in found or size == (h, w):
                continue
            try:
                found[size] = macs_at(model, c, size)
            except UsageError as err:
                errors.append(err.message)
        if found:
            best = min(found, key=lambda s: (abs(found[s] - target), -s[0]))
            return best, found[best], multiple
    raise UsageError(f"the model runs at no input smaller than {h}x{w}: {errors[0] if errors else 'no smaller size'}",
                     "the smaller-input baseline is skipped")


def figures(model: nn.Module, input_size: tuple[int, ...], target_macs: int, task, holdout: Any, *,
            evaluation: Any = None, preprocess: Any = None, device: str = "cpu") -> dict[str, Any]:
    """The original at the input size of MACs closest to ``target_macs``: ``{"input_size", "macs", "agreement"
    (classify/segment), "map50_vs_original" (detect), the task's metric with ``evaluation``}``, or
    ``{"skipped": reason}``."""
    full = count_macs(model, tuple(input_size))
    if task.name == "raw":
        return {"skipped": "a raw task's outputs have no meaning compress knows at another input size"}
    if target_macs >= full:
        return {"skipped": "the pruned model has the original's MACs"}
    try:
        size, macs, multiple = equal_macs_size(model, tuple(input_size), target_macs)
    except UsageError as err:
        return {"skipped": err.message}
    out: dict[str, Any] = {"input_size": [int(input_size[0]), *size], "multiple": multiple, "macs": macs,
                           "macs_ratio": round(macs / full, 4)}
    if task.name == "detect":
        out.update(_detection(model, size, task, holdout, evaluation, preprocess))
        return out
    small = AtSize(model, size)
    agree, kl = agreement(small, model, holdout, device=device, batch_size=BATCH, task=task)
    out.update(agreement=round(agree, 5), kl=round(kl, 5))
    if evaluation is not None:
        out[task.metric] = round(labelled_metric(task, small, evaluation, device=device), 5)
    return out


def _detection(model, size, task, holdout, evaluation, preprocess) -> dict[str, Any]:
    """mAP@0.5 (and 0.5:0.95) of the original's boxes at ``size``, scaled back, against its own full-size boxes;
    labelled mAP@0.5 with ``evaluation``. Needs a detector compress decodes (``raw.detector``)."""
    if not hasattr(model, "detector"):
        return {"note": "raw outputs only: no boxes to scale back"}
    try:
        from torchmetrics.detection import MeanAveragePrecision
    except ImportError as err:
        return {"note": f"not measured: {err} (pip install 'compress[detect]')"}
    from compress.detection.agreement import SCORE_THRESHOLD, detections

    mean, std = preprocess.mean, preprocess.std
    metric, boxes = MeanAveragePrecision(iou_type="bbox", backend="pycocotools"), 0
    with torch.no_grad():
        for x in image_batches(holdout, 16):
            targets = [{"boxes": d["boxes"][d["scores"] >= SCORE_THRESHOLD], "labels": d["labels"][d["scores"] >= SCORE_THRESHOLD]}
                       for d in detections(model, x, mean, std)]
            boxes += sum(int(t["boxes"].shape[0]) for t in targets)
            metric.update(scaled_detections(model, x, size, mean, std), targets)
    out: dict[str, Any] = {"original_boxes": boxes}
    if boxes:
        result = metric.compute()
        out.update(map50_vs_original=round(float(result["map_50"]), 4), map_vs_original=round(float(result["map"]), 4))
    if evaluation is not None:
        meter = task.metric_meter()
        with torch.no_grad():
            for x, y in labelled_pairs(evaluation, 16):
                meter.update(scaled_detections(model, x, size, mean, std), y)
        out[task.metric] = round(meter.value(), 5)
    return out


def scaled_detections(model, x: torch.Tensor, size: tuple[int, int], mean, std) -> list[dict[str, torch.Tensor]]:
    """The whole detector's boxes on ``x`` resized to ``size``, in ``x``'s pixel coordinates."""
    from compress.detection.agreement import detections

    sy, sx = x.shape[-2] / size[0], x.shape[-1] / size[1]
    scale = torch.tensor([sx, sy, sx, sy])
    return [{**d, "boxes": d["boxes"] * scale} for d in detections(model, resize(x, size), mean, std)]


# ---- how it is shown ----

def _pruned_side(summary, task) -> tuple[str, float | None, float | None]:
    """(what is compared, the pruned model's figure, the smaller input's figure)."""
    small = summary.task_figures.get(KEY) or {}
    metric, agree = summary.written_figures()
    if metric is not None and small.get(task.metric) is not None:
        return f"{task.metric_label} (eval)", metric, small[task.metric]
    if task.name == "detect":
        return "mAP@0.5 vs original's boxes", summary.task_figures.get("map50_vs_original"), small.get("map50_vs_original")
    return f"{task.agreement_label} (held out)", agree, small.get("agreement")


def summary_rows(summary, task, pct: Callable[[Any], str]) -> list[tuple[str, str, str, str]]:
    """Rows (what, original, pruned, change) of the prune summary table for the smaller-input baseline."""
    small, chosen = summary.task_figures.get(KEY), summary.task_figures.get("axes")
    rows = []
    if chosen:  # --axes: the input size is part of the output
        was, now = chosen["original_input_size"][1:], chosen["chosen"]["input_size"]
        rows.append(("input size", "x".join(map(str, was)), "x".join(map(str, now)),
                     "resolution only: no channel cut" if chosen["resolution_only"] else
                     f"with {chosen['chosen']['channels_removed']} channels cut"))
    if not small:
        return rows
    if "skipped" in small:
        return rows + [("original at a smaller input", "", "", f"not measured: {small['skipped']}")]
    h, w = small["input_size"][1:]
    name = f"original at {h}x{w} input"
    rows += [(f"{name}: MACs", f"{summary.macs_before:,}", f"{summary.macs_after:,}",
             f"{small['macs']:,} ({small['macs_ratio']:.2f}x)")]
    if small.get(task.metric) is not None:
        rows.append((f"{name}: {task.metric_label} (eval)", pct(summary.metric_before), pct(summary.written_figures()[0]),
                     pct(small[task.metric])))
    if small.get("agreement") is not None:
        rows.append((f"{name}: {task.agreement_label}", "100 %", pct(summary.written_figures()[1]),
                     pct(small["agreement"])))
    if small.get("map50_vs_original") is not None:
        rows.append((f"{name}: mAP@0.5 vs original's boxes", "100 %", pct(summary.task_figures.get("map50_vs_original")),
                     pct(small["map50_vs_original"])))
    return rows


def verdict(summary, task) -> str | None:
    """One line: which wins at about equal MACs, the pruned model or the original at the smaller input."""
    small = summary.task_figures.get(KEY)
    if not small or "skipped" in small:
        return None
    what, pruned, smaller = _pruned_side(summary, task)
    if pruned is None or smaller is None:
        return None
    h, w = small["input_size"][1:]
    cut = summary.macs_after / max(summary.macs_before, 1)
    figures = (f"{what} {pruned:.1%} at {cut:.2f}x MACs at {'x'.join(map(str, summary.input_size[1:]))}, against the original at {h}x{w} input: {smaller:.1%} at "
               f"{small['macs_ratio']:.2f}x MACs")
    if pruned > smaller:
        return f"verdict: the compressed model beats the original at a smaller input ({figures})"
    if pruned == smaller:
        return f"verdict: the compressed model ties with the original at a smaller input ({figures})"
    return (f"verdict: the original at {h}x{w} input beats the compressed model: use it instead, or plan over the input "
            f"size with --axes width,resolution ({figures})")


__all__ = ["AtSize", "KEY", "equal_macs_size", "figures", "macs_at", "resize", "resize_images", "scaled_detections", "size_for",
           "summary_rows", "verdict"]
