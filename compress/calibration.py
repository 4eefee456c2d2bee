"""From unlabeled images to the tensors each stage uses: a folder (:func:`load_calibration`) or images
already in memory (:func:`calibration_from_tensor`), split alike. The one path from a folder to tensors:
what ``compress bench`` compares on (:func:`unlabelled_batches`) and ``compress export`` verifies and
calibrates on (:func:`unlabelled_tensor`) are decoded here too.

One seeded split: importance and distillation share the non-held-out images (the method uses
the same images for both); the held-out part only measures agreement with the original. A tensor's
images split as the sorted files of a folder holding them in that order would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from compress.calibrate import ImageDataset, make_loader, preload, preload_fitting, scan_folder, split_images
from compress.calibrate.preprocess import Preprocess
from compress.errors import UsageError


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


def calibration_from_tensor(images: torch.Tensor, *, seed: int = 0, importance_max: int | None = None,
                            holdout_fraction: float = 0.1) -> CalibrationData:
    """The split of :func:`load_calibration` over ``images`` (N, C, H, W), already preprocessed for the model."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise UsageError(f"calibration images must be a float (N, C, H, W) tensor, not {_what(images)}",
                         "pass preprocessed images, e.g. torch.stack of the model's inputs")
    names = [Path(f"{i:012d}") for i in range(images.shape[0])]  # sorted as the tensor is ordered
    split = split_images(names, seed=seed, holdout_fraction=holdout_fraction, importance_max=importance_max)
    pick = lambda paths: images[[int(p.name) for p in paths]].contiguous()  # noqa: E731
    distill = pick(split.distill)
    importance = distill if list(split.importance) == list(split.distill) else pick(split.importance)
    return CalibrationData(
        importance=importance, distill=distill, holdout=pick(split.holdout), importance_paths=list(split.importance),
        counts={"found": len(names), "importance": len(split.importance), "distill": len(split.distill),
                "holdout": len(split.holdout)},
        skipped=0,
    )


def checked_images(images: Any, module: torch.nn.Module | None = None) -> torch.Tensor:
    """``images`` as :func:`calibration_from_tensor` and the stages need them: a float32 (N, C, H, W) tensor
    with data, its channels those of ``module``'s first convolution (when it has one and a trial forward
    agrees), every value finite. float64/float16/bfloat16 are converted; everything else is one line."""
    if not isinstance(images, torch.Tensor):
        raise UsageError(f"images must be a float (N, C, H, W) tensor, not {type(images).__name__}",
                         "pass preprocessed images, e.g. torch.stack of the model's inputs")
    if images.is_meta:
        raise UsageError("images are a meta tensor (a shape without data)", "pass images that hold their pixels")
    if images.dim() != 4:
        raise UsageError(f"images must be a float (N, C, H, W) tensor, not {_what(images)} of shape {tuple(images.shape)}",
                         "add the batch dimension (images.unsqueeze(0)) or stack the images")
    if images.shape[0] < 1:
        raise UsageError("images hold no image (N = 0)", "pass at least one image")
    if images.is_complex() or not (images.is_floating_point()):
        raise UsageError(f"images are {images.dtype}: the model expects preprocessed float pixels",
                         "convert and normalise them as the model expects (e.g. images.float() / 255, then mean/std)")
    if images.dtype != torch.float32:
        images = images.float()
    _check_channels(images, module)
    finite = torch.isfinite(images.detach()).flatten(1).all(1)
    if not bool(finite.all()):
        from compress.calibrate.errors import CalibrationError

        bad = int((~finite).nonzero()[0, 0])
        what = "NaN" if bool(torch.isnan(images[bad]).any()) else "inf"
        raise CalibrationError(f"image {bad} of {len(images)} holds {what} values "
                               f"({int((~finite).sum())} image(s) in all are not finite)",
                               "drop or repair those images: one NaN changes which channels are kept")
    return images


def _check_channels(images: torch.Tensor, module: torch.nn.Module | None) -> None:
    conv = next((m for m in (module.modules() if module is not None else ()) if isinstance(m, torch.nn.Conv2d)), None)
    if conv is None or images.shape[1] == conv.in_channels:
        return
    was = module.training
    try:  # the first conv found may not be the input's: only a failing forward is refused
        module.eval()
        with torch.no_grad():
            module(images[:1].to(conv.weight.device))
        return
    except Exception:  # noqa: BLE001 - any failure means the images do not fit the model
        pass
    finally:
        module.train(was)
    c = conv.in_channels
    hint = (f"they look channels-last (N, H, W, C): pass images.permute(0, 3, 1, 2)" if images.shape[-1] == c
            else f"give {c}-channel images (N, {c}, H, W), preprocessed as the model expects")
    raise UsageError(f"images have {images.shape[1]} channels (shape {tuple(images.shape)}), but the model's first "
                     f"convolution takes {c}", hint)


MIN_TRAIN = 2  # images recovery trains on at least (the distillation's batches and its BatchNorms need two)


def check_enough(data: CalibrationData, *, recover: bool, source: str) -> None:
    """Refuse (exit 4, before the graph is built) a calibration set too small for recovery's split: naming
    ``source`` (the folder, or "the images tensor") and the real count of usable images."""
    c = data.counts
    if recover and c["distill"] < MIN_TRAIN:
        from compress.calibrate.errors import CalibrationError

        held = "the same image is reused as held out" if c["found"] == 1 else f"{c['holdout']} held out"
        raise CalibrationError(f"{source} has {c['found']} usable image{'s' if c['found'] != 1 else ''}: recovery "
                               f"trains on {c['distill']} ({held}) and needs at least {MIN_TRAIN}",
                               f"give at least {MIN_TRAIN + 1} images (a few hundred for a reliable result), "
                               "or pass --no-recover")


def warn_shared(calib: str | Path | None, eval_dir: str | Path | None, warn) -> int:
    """Say (through ``warn``) how many images ``--eval`` shares with ``--calib`` (the same files, through any
    path or link): pruning and recovery would have seen the images they are judged on. Returns that count."""
    if not calib or not eval_dir or not Path(calib).is_dir() or not Path(eval_dir).is_dir():
        return 0
    import os

    from compress.calibrate.folder import find_images

    seen = {os.path.realpath(p) for p in find_images(calib)}
    evaluated = [p for p in find_images(eval_dir) if os.path.realpath(p) in seen]
    if evaluated:
        warn(f"--eval {eval_dir} shares {len(evaluated)} images with --calib {calib} (first: {evaluated[0]}): the "
             "pruned model was fitted on images it is judged on, so its figures are optimistic")
    return len(evaluated)


def _what(images) -> str:
    return f"a {images.dim()}-d {images.dtype} tensor" if isinstance(images, torch.Tensor) else type(images).__name__


def unlabelled_batches(folder: str | Path, preprocess: Preprocess, *, max_images: int, batch_size: int):
    """(``batch_size`` batches of the first ``max_images`` images of ``folder``, their number): decoded once
    into memory where they fit, else streamed from disk."""
    dataset = ImageDataset(scan_folder(folder, max_images=max_images).paths, preprocess)
    images = preload(dataset)
    if images is None:
        return (x for x, _ in make_loader(dataset, batch_size=batch_size)), len(dataset)
    return (images[i:i + batch_size] for i in range(0, len(images), batch_size)), len(images)


def unlabelled_tensor(folder: str | Path, preprocess: Preprocess, *, max_images: int,
                      max_bytes: int) -> tuple[torch.Tensor, int]:
    """(as many of the first ``max_images`` images of ``folder`` as fit in ``max_bytes``, how many there were)."""
    paths = scan_folder(folder, max_images=max_images).paths
    return preload_fitting(ImageDataset(paths, preprocess), max_bytes=max_bytes), len(paths)
