"""Datasets and loaders over checked image lists, and whole-set preloading into one tensor.

Calibration sets are small (hundreds to a few thousand images), and importance estimation and
distillation walk them many times, so :func:`preload` decodes them once, on a thread pool, into
one ``(N, 3, H, W)`` float tensor; :func:`make_loader` is the streaming fallback when that
tensor would not fit in ``max_bytes``.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from .errors import CalibrationError
from .folder import _check_root, check_images, default_threads, find_images, load_rgb, log, warn_skipped
from .preprocess import Preprocess

EMPTY_SHOWN = 8  # empty class folders named in the warning; the rest are counted (a 1,000-class folder stays one line)


def _load(path: Path, preprocess: Preprocess) -> torch.Tensor:
    try:
        img = load_rgb(path)
    except Exception as err:  # the file changed since it was checked
        raise CalibrationError(f"cannot decode {path}: {err}", "the file changed or broke after the folder was scanned") from err
    return preprocess(img)


class ImageDataset(Dataset):
    """``(tensor, index)`` pairs; ``index`` is the position in ``paths`` (it seeds per-image noise)."""

    def __init__(self, paths: Sequence[str | Path], preprocess: Preprocess):
        self.paths = [Path(p) for p in paths]
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return _load(self.paths[index], self.preprocess), index


class LabelledFolder(Dataset):
    """``root/<class>/<image>`` (torchvision ``ImageFolder`` layout) as ``(tensor, label)`` pairs.

    ``classes`` are the sorted non-hidden subfolder names; a class's images are searched
    recursively and unreadable files are skipped with one warning for the whole folder, as in
    :func:`calibrate.folder.scan_folder`. A class folder without a usable image keeps its index
    (labels must match the model's outputs) and is named in the same warning.
    """

    def __init__(self, root: str | Path, preprocess: Preprocess, *, threads: int | None = None):
        self.root = _check_root(root)
        self.preprocess = preprocess
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not self.classes:
            raise CalibrationError(f"no class folders in {self.root}",
                                   "a labelled folder holds one subfolder per class: ROOT/<class>/<image>")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        candidates = [(p, i) for i, c in enumerate(self.classes) for p in find_images(self.root / c)]
        good, skipped = check_images([p for p, _ in candidates], threads=threads)
        usable = set(good)
        self.samples: list[tuple[Path, int]] = [(p, i) for p, i in candidates if p in usable]
        warn_skipped(self.root, skipped, len(candidates))
        if not self.samples:
            raise CalibrationError(f"no usable image in the class folders of {self.root}",
                                   "use .jpg/.png/... images in ROOT/<class>/ folders")
        counts = [0] * len(self.classes)
        for _, label in self.samples:
            counts[label] += 1
        self.empty_classes = [c for c, n in zip(self.classes, counts) if n == 0]
        if self.empty_classes:
            shown = ", ".join(self.empty_classes[:EMPTY_SHOWN])
            more = len(self.empty_classes) - EMPTY_SHOWN
            log.warning("%d of %d class folders without a usable image in %s: %s%s", len(self.empty_classes),
                        len(self.classes), self.root, shown, f" and {more} more" if more > 0 else "")
        self.paths = [p for p, _ in self.samples]
        self.targets = [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return _load(path, self.preprocess), label


def default_workers() -> int:
    """DataLoader worker processes for this machine.

    Measured on the 2-core dev machine (shared, so noisy) with 2,000 CIFAR 32x32 JPEGs, batch
    128, one epoch, two runs each: 0 workers 0.61–0.67 s, 1 worker 0.85–0.89 s, 2 workers
    0.96–0.99 s (:func:`preload` with threads: 0.5–0.9 s). Decoding a tiny JPEG costs far less
    than shipping it between processes, so with 1–2 cores the main process is fastest; with
    more cores workers pay off for larger images (one core is left for the training loop).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores <= 2 else min(8, cores - 1)


def make_loader(dataset: Dataset, *, batch_size: int, shuffle: bool = False, seed: int = 0,
                workers: int | None = None, drop_last: bool = False) -> DataLoader:
    """A DataLoader whose order depends only on ``seed`` (its own generator, not global RNG)."""
    if batch_size < 1:
        raise CalibrationError(f"batch size must be at least 1, got {batch_size}")
    workers = default_workers() if workers is None else workers
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      num_workers=workers, drop_last=drop_last, persistent_workers=False)


def _item_shape(dataset: Dataset) -> tuple[int, ...]:
    pre = getattr(dataset, "preprocess", None)
    if isinstance(pre, Preprocess):
        return pre.input_shape
    return tuple(dataset[0][0].shape)


def _fill(n: int, shape: tuple[int, ...], get: Callable[[int], torch.Tensor], threads: int,
          progress: bool | None, label: str) -> torch.Tensor:
    out = torch.empty((n, *shape), dtype=torch.float32)

    def put(i: int) -> None:
        out[i] = get(i)

    show = progress if progress is not None else (sys.stderr.isatty() and n >= 1000)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        if not show:
            for _ in pool.map(put, range(n)):
                pass
        else:
            from rich.progress import Progress
            from rich.console import Console

            with Progress(console=Console(file=sys.stderr), transient=True) as bar:
                task = bar.add_task(label, total=n)
                for _ in pool.map(put, range(n)):
                    bar.advance(task)
    return out


def _fits(n: int, shape: tuple[int, ...], max_bytes: int) -> bool:
    return n * _bytes(shape) <= max_bytes


def preload(dataset: Dataset, *, max_bytes: int = 2**31, workers: int | None = None,
            progress: bool | None = None) -> torch.Tensor | None:
    """All of ``dataset``'s tensors, in order, as one ``(N, 3, H, W)`` float32 tensor.

    ``None`` when it would take more than ``max_bytes`` (stream with :func:`make_loader`
    instead). ``workers`` is the number of decoding threads (default: :func:`default_threads`).
    """
    n = len(dataset)
    if n == 0:
        raise CalibrationError("nothing to preload: the dataset is empty")
    shape = _item_shape(dataset)
    if not _fits(n, shape, max_bytes):
        return None
    return _fill(n, shape, lambda i: dataset[i][0], workers or default_threads(), progress, "decoding images")


def preload_fitting(dataset: Dataset, *, max_bytes: int = 2**31, workers: int | None = None,
                    progress: bool | None = None) -> torch.Tensor:
    """The first of ``dataset``'s images that fit in ``max_bytes`` together (all of them where they fit), as one
    tensor; for a fixed-size sample such as INT8 calibration. An image larger than ``max_bytes`` alone is an error."""
    n = len(dataset)
    if n == 0:
        raise CalibrationError("nothing to preload: the dataset is empty")
    shape = _item_shape(dataset)
    fit = min(n, max_bytes // _bytes(shape))
    if fit == 0:
        raise CalibrationError(f"one preprocessed image of shape {'x'.join(map(str, shape))} takes more than "
                               f"{max_bytes / 2**30:.1f} GiB", "use a smaller --input-size")
    return _fill(fit, shape, lambda i: dataset[i][0], workers or default_threads(), progress, "decoding images")


def _bytes(shape: tuple[int, ...]) -> int:
    size = 4
    for d in shape:
        size *= d
    return size


def preload_labelled(folder: LabelledFolder, *, max_bytes: int = 2**31, workers: int | None = None,
                     progress: bool | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(images (N, 3, H, W), labels (N,) int64)`` of a labelled folder, or ``None`` if too big."""
    images = preload(folder, max_bytes=max_bytes, workers=workers, progress=progress)
    if images is None:
        return None
    return images, torch.tensor(folder.targets, dtype=torch.int64)
