"""From a folder of unlabeled images to the tensors each stage uses.

One seeded split: importance and distillation share the non-held-out images (the method uses
the same images for both); the held-out part only measures agreement with the original.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from compress.calibrate import ImageDataset, make_loader, preload, scan_folder, split_images
from compress.calibrate.preprocess import Preprocess


@dataclass
class CalibrationData:
    importance: Any  # float tensor (N,3,H,W), or a loader of (tensor, index) batches
    distill: Any
    holdout: Any
    importance_paths: list[Path]
    counts: dict[str, int]
    skipped: int

    def example(self, n: int = 2) -> torch.Tensor:
        source = self.holdout if isinstance(self.holdout, torch.Tensor) else next(iter(self.holdout))[0]
        return source[:n].clone()


def load_calibration(folder: str | Path, preprocess: Preprocess, *, seed: int = 0, max_images: int | None = None,
                     importance_max: int | None = None, holdout_fraction: float = 0.1,
                     batch_size: int = 64) -> CalibrationData:
    images = scan_folder(folder, max_images=max_images, seed=seed)
    split = split_images(images.paths, seed=seed, holdout_fraction=holdout_fraction, importance_max=importance_max)
    parts: dict[str, Any] = {}
    for name in ("distill", "importance", "holdout"):
        paths = getattr(split, name)
        if name == "importance" and list(paths) == list(split.distill):
            parts[name] = parts["distill"]  # same images: decode once
            continue
        dataset = ImageDataset(paths, preprocess)
        tensor = preload(dataset)
        parts[name] = tensor if tensor is not None else make_loader(dataset, batch_size=batch_size, shuffle=name == "distill", seed=seed)
    return CalibrationData(
        importance=parts["importance"], distill=parts["distill"], holdout=parts["holdout"],
        importance_paths=list(split.importance),
        counts={"found": len(images.paths), "importance": len(split.importance), "distill": len(split.distill),
                "holdout": len(split.holdout)},
        skipped=len(images.skipped),
    )
