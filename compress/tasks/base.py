"""What a task is: how a model's output is structured, taught, scored and shown.

A task (``--task classify|segment``, ``auto`` by the output's structure) gathers every place where the
pipeline must know what the output means, so that the stages stay one path for all of them:

- ``primary(output)``: the tensor the metrics read (a classifier's logits, a segmenter's ``out``);
- ``importance_outputs(output)``: the tensors random gradients are drawn for (every float tensor);
- ``distill_loss(student, teacher, T)``: the self-distillation loss per output kind;
- ``agreement_meter()``: the label-free figure of the student against the original on held-out images
  (top-1 agreement; mIoU against the original's argmax), with one value per image for the paired
  selection test of recovery (``compress.recover.selection.not_worse``);
- ``metric_meter()`` and ``labelled(folder, preprocess)``: the labelled metric and its data
  (``labelled_output``: what the meter reads, the output unless the task decodes it);
- ``metric`` / ``metric_label`` / ``agreement_label``: the summary key and the words of tables;
- ``extra_figures(...)``: the task's own figures (``RunSummary.task_figures``), and how they are shown:
  ``summary_rows`` (the prune summary table), ``sweep_columns`` / ``sweep_figures`` (the sweep table),
  ``report_notes`` (the bench report), so no other layer reads them by name.

A new task (detection, a user's own) is one more subclass registered in ``compress.tasks.TASKS``.
Outputs may be tensors, tuples, lists, dicts or named tuples; anything else is refused by name.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from compress.errors import UsageError
from compress.util.modules import tensor_leaves


def flatten_outputs(output: Any) -> list[torch.Tensor]:
    """Every tensor of a (nested) output, in a fixed order (:func:`compress.util.modules.tensor_leaves`);
    any leaf other than a tensor or ``None`` is refused by name."""
    try:
        return tensor_leaves(output)
    except TypeError as err:
        raise UsageError(f"the model returns {err}, which compress cannot compare",
                         "return tensors, or tuples / lists / dicts of tensors") from err


def first_output(output: Any) -> torch.Tensor:
    """The output's main tensor: ``out`` of a dict that has it (torchvision segmentation), else the first."""
    if isinstance(output, dict) and isinstance(output.get("out"), torch.Tensor):
        return output["out"]
    tensors = flatten_outputs(output)
    if not tensors:
        raise UsageError("the model returns no tensor", "return the logits")
    return tensors[0]


def kl_per_position(s: torch.Tensor, t: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(softmax(t/T) || softmax(s/T)) over the class axis (1): shape (N,) for logits, (N, H, W) for maps."""
    ls, lt = F.log_softmax(s.float() / temperature, 1), F.log_softmax(t.float() / temperature, 1)
    return (lt.exp() * (lt - ls)).sum(1)


class Task:
    """The classifier behaviour; subclasses override what differs."""

    name = "task"
    metric = "top1"  # summary key prefix of the labelled metric (top1_before, top1_recovered, ...)
    metric_label = "top-1"
    agreement_label = "agreement with original"  # what tables call the label-free figure
    agreement_column = "agreement"  # ...and its short form in report and sweep columns
    auto_samples: int | None = None  # augmented images of the automatic recovery budget (None: distill's default)
    distill_lr = 0.01  # distillation's peak learning rate unless one is given (SGD, cosine)
    classes: int | None = None  # the model's number of classes, set when the task is resolved on its output:
    # labelled data (``labelled``) naming a class beyond it is refused before any long work

    def claims(self, output: Any, example: torch.Tensor) -> bool:
        raise NotImplementedError

    def claims_auto(self, output: Any, example: torch.Tensor) -> bool:
        """Whether ``--task auto`` may pick this task: only on strong evidence (default: ``claims``)."""
        return self.claims(output, example)

    def primary(self, output: Any) -> torch.Tensor:
        return first_output(output)

    def class_count(self, output: Any) -> int | None:
        """How many classes the model's output scores (the class axis of the primary tensor)."""
        return int(self.primary(output).shape[1])

    def importance_outputs(self, output: Any) -> list[torch.Tensor]:
        return [t for t in flatten_outputs(output) if t.is_floating_point()]

    def distill_loss(self, student: Any, teacher: Any, temperature: float) -> torch.Tensor:
        raise NotImplementedError

    def batch_agreement(self, student: Any, teacher: Any) -> torch.Tensor:
        """A scalar for the progress bar (fraction of positions whose argmax agrees)."""
        return (self.primary(student).argmax(1) == self.primary(teacher).argmax(1)).float().mean()

    def agreement_meter(self) -> "Meter":
        raise NotImplementedError

    def metric_meter(self) -> "Meter":
        raise NotImplementedError

    def labels(self) -> dict[str, str]:
        """The words tables use, recorded in reports: ``{"task", "metric", "agreement"}``."""
        return {"task": self.name, "metric": self.metric_label, "agreement": self.agreement_column}

    def labelled(self, folder: str, preprocess, batch_size: int = 256):
        """The labelled evaluation data of ``--eval``: (images, targets) tensors, or a loader of batches; a
        label naming a class the model lacks (``self.classes``) is a one-line error naming the file (exit 4)."""
        raise NotImplementedError

    def labelled_output(self, model: Any, x: torch.Tensor, output: Any = None) -> Any:
        """What the labelled metric's meter reads for the batch ``x``: the model's output (``output`` when
        already computed); detection: the whole detector's decoded boxes."""
        return model(x) if output is None else output

    def extra_figures(self, original: Any, student: Any, images: Any, preprocess: Any) -> dict[str, Any]:
        """Summary figures beyond the agreement meter, measured once on the held-out images for the model
        the run writes (detection: mAP against the original's boxes)."""
        return {}

    def summary_rows(self, figures: dict[str, Any], pct: Callable[[Any], str]) -> list[tuple[str, str, str, str]]:
        """Rows of the prune summary table (what, original, pruned, change) for ``extra_figures``' figures;
        ``pct`` formats a fraction."""
        return []

    def sweep_columns(self) -> list[tuple[str, str]]:
        """Extra sweep columns as (header, row key): figures of the written model against the original."""
        return []

    def sweep_figures(self, figures: dict[str, Any]) -> dict[str, Any]:
        """The sweep row's values of :meth:`sweep_columns` from ``extra_figures``' figures ({} when not measured);
        they compare against the original, whose own row shows 1.0."""
        return {}

    def report_notes(self, figures: dict[str, Any]) -> list[str]:
        """Lines for the bench report about ``extra_figures``' figures."""
        return []

    def describe(self, output: Any) -> str:
        shapes = ", ".join("x".join(str(d) for d in t.shape[1:]) for t in flatten_outputs(output))
        return f"{type(output).__name__} of {shapes}"


class Meter:
    """Accumulates a figure over batches. ``update(pred, ref)``: model output and reference (the original's
    output, or labels); ``value()`` the figure; ``per_image()`` one value per image (agreement meters)."""

    def update(self, output: Any, reference: Any) -> None:
        raise NotImplementedError

    def value(self) -> float:
        raise NotImplementedError

    def kl(self) -> float:
        return float("nan")

    def per_image(self) -> torch.Tensor:
        raise NotImplementedError
