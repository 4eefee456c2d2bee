"""Image classification: one logits tensor (N, classes); top-1 agreement, KL at a temperature, top-1."""

from __future__ import annotations

from typing import Any

import torch

from compress.tasks.base import Meter, Task, first_output, kl_per_position


class ClassifyTask(Task):
    name = "classify"
    metric = "top1"
    metric_label = "top-1"
    agreement_label = "agreement with original"
    agreement_column = "agreement"

    def claims(self, output: Any, example: torch.Tensor) -> bool:
        return first_output(output).dim() == 2

    def distill_loss(self, student: Any, teacher: Any, temperature: float) -> torch.Tensor:
        T = float(temperature)
        return kl_per_position(self.primary(student), self.primary(teacher), T).mean() * (T * T)

    def agreement_meter(self) -> Meter:
        return _Agreement(self)

    def metric_meter(self) -> Meter:
        return _Top1(self)

    def labelled(self, folder: str, preprocess, batch_size: int = 256):
        from compress.calibrate import LabelledFolder, make_loader, preload_labelled

        data = LabelledFolder(folder, preprocess)
        if self.classes is not None and len(data.classes) > self.classes:
            from compress.calibrate.errors import CalibrationError

            raise CalibrationError(f"{folder} has {len(data.classes)} class folders, but the model has {self.classes} "
                                   f"classes: {data.root / data.classes[self.classes]} would be class {self.classes}",
                                   "one folder per model class, named so that they sort in the model's class order")
        pre = preload_labelled(data)
        return pre if pre is not None else make_loader(data, batch_size=batch_size)


class _Agreement(Meter):
    def __init__(self, task: Task):
        self.task, self.hits, self.kl_sum = task, [], 0.0

    def update(self, output, reference) -> None:
        s, t = self.task.primary(output), self.task.primary(reference)
        self.hits.append((s.argmax(1) == t.argmax(1)).cpu())
        self.kl_sum += kl_per_position(s, t).sum().item()

    def per_image(self) -> torch.Tensor:
        return torch.cat(self.hits) if self.hits else torch.zeros(0, dtype=torch.bool)

    def value(self) -> float:
        return self.per_image().float().mean().item()

    def kl(self) -> float:
        return self.kl_sum / max(1, self.per_image().numel())


class _Top1(Meter):
    def __init__(self, task: Task):
        self.task, self.correct, self.n = task, 0, 0

    def update(self, output, labels) -> None:
        pred = self.task.primary(output).argmax(1).cpu()
        self.correct += (pred == labels.cpu()).sum().item()
        self.n += labels.shape[0]

    def value(self) -> float:
        if self.n == 0:
            raise ValueError("no labelled images to measure accuracy on")
        return self.correct / self.n
