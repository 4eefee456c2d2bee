"""Resolve what ``compress bench`` compares: a pruned folder and its original, or any A and B."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from compress import artifacts
from compress import calibrate
from compress.deploy import Side, found_artifacts, spec_file
from compress.errors import UsageError
from compress.loading import load_from_spec, load_model
from compress.spec import LoadedModel

BATCH = 64  # images per forward pass: a whole eval folder at once can need tens of GB of activations
CHECK_IMAGES = 2000  # images every runtime's file is run on for its row's top-1 / agreement


def load_sides(first: str, second: str | None, out: str | None, eval_dir: str | None, calib: str | None,
               load: dict, say: Callable[[str], None]) -> tuple[list[Side], tuple[int, ...], Path]:
    a = load_model(first, on_note=say, **load)
    names = ("original", "compressed")
    if second is None:
        if not a.pruned:
            raise UsageError(f"{first} is not a compress output folder", "give two models: compress bench A B")
        original, compressed = load_from_spec(a.spec, trust=load.get("trust", False)), a
        out_dir = Path(out) if out else Path(first)
        calib = calib or (a.record or {}).get("config", {}).get("calib")
    else:
        original, compressed = a, load_model(second, on_note=say, **load)
        out_dir = Path(out) if out else Path("bench-report")
        if not pruned_from(compressed, first):
            names = ("A", "B")
            say(f"note: B ({second}) was not pruned from A ({first}): the two are compared as unrelated models "
                "(A is the baseline of every ratio), not as an original and its compressed version")
    if tuple(original.spec.input_size) != tuple(compressed.spec.input_size):
        raise UsageError(f"the two models take different inputs ({original.spec.input_size} vs {compressed.spec.input_size})",
                         "compare models of the same input size")
    out_dir.mkdir(parents=True, exist_ok=True)
    sides = [_side(names[0], original, out_dir, load), _side(names[1], compressed, out_dir, load)]
    if eval_dir:
        _accuracy(sides, eval_dir, compressed, say)
    elif calib and Path(calib).is_dir():
        _agreement(sides, calib, compressed, say)
    return sides, tuple(original.spec.input_size), out_dir


def pruned_from(model: LoadedModel, original: str) -> bool:
    """Whether ``model`` is a compress output whose record names ``original`` as the checkpoint it was pruned from."""
    if not model.pruned:
        return False
    recorded = (model.record or {}).get("original", {}).get("checkpoint") or model.spec.checkpoint
    return bool(recorded) and Path(recorded).resolve() == Path(original).resolve()


def _side(name: str, loaded: LoadedModel, out_dir: Path, load: dict) -> Side:
    if loaded.pruned:
        arg = str(loaded.path)
        files = {attr: loaded.path / name for attr, name in artifacts.MODEL_FILES.items()}
    else:
        arg = str(spec_file(out_dir, name, loaded.spec, load.get("trust", False)))
        files = {}
    side = Side(name, loaded.model, arg, sizes={"checkpoint": loaded.size_bytes},
                artifacts=found_artifacts(loaded.path) if loaded.pruned else {})
    for attr, path in files.items():
        if path.exists():
            setattr(side, attr, path)
    return side


def _kept(sides: list[Side], batches, limit: int = CHECK_IMAGES):
    """Pass ``batches`` through, keeping the first ``limit`` images (and labels) on both sides as ``check``:
    every runtime's file is run on them for its own top-1 and agreement (``compress.deploy.row_figures``)."""
    xs, ys = [], []
    for x, y in batches:
        if sum(len(part) for part in xs) < limit:
            xs.append(x)
            ys.append(y)
        yield x, y
    if xs:
        images = torch.cat(xs)[:limit]
        labels = None if ys[0] is None else torch.cat(ys)[:limit]
        for side in sides:
            side.check = (images, labels)


def _accuracy(sides: list[Side], eval_dir: str, loaded: LoadedModel, say) -> None:
    hits, same, n = _compare(sides, _kept(sides, _batches(eval_dir, loaded, labelled=True)))
    sides[0].top1, sides[1].top1 = hits[0] / n, hits[1] / n
    sides[0].agreement, sides[1].agreement = 1.0, same / n
    say(f"accuracy on {eval_dir}: {sides[0].name} {sides[0].top1:.2%}, {sides[1].name} {sides[1].top1:.2%}")


def _agreement(sides: list[Side], calib: str, loaded: LoadedModel, say) -> None:
    _, same, n = _compare(sides, _kept(sides, _batches(calib, loaded, labelled=False)))
    sides[0].agreement, sides[1].agreement = 1.0, same / n
    say(f"top-1 agreement with the original on {n} images of {calib}: {sides[1].agreement:.2%}")


def _compare(sides: list[Side], batches) -> tuple[list[int], int, int]:
    """One pass of both models over ``(images, labels or None)`` batches: (correct per model, images
    where their top-1 agree, images)."""
    hits, same, n = [0, 0], 0, 0
    models = [side.module.eval() for side in sides]
    with torch.inference_mode():
        for x, y in batches:
            a, b = (m(x).argmax(1) for m in models)
            same += int((a == b).sum())
            n += len(x)
            if y is not None:
                hits[0] += int((a == y).sum())
                hits[1] += int((b == y).sum())
    if n == 0:
        raise UsageError("no images to compare the two models on", "give a folder with images")
    return hits, same, n


def _batches(folder: str, loaded: LoadedModel, labelled: bool):
    """``(images, labels)`` batches (labels None when unlabeled, where up to 500 images are read):
    decoded once into memory where they fit, else streamed from disk."""
    pre = loaded.preprocess()
    if labelled:
        dataset = calibrate.LabelledFolder(folder, pre)
        whole = calibrate.preload_labelled(dataset)
    else:
        dataset = calibrate.ImageDataset(calibrate.scan_folder(folder, max_images=500).paths, pre)
        images = calibrate.preload(dataset)
        whole = None if images is None else (images, None)
    if whole is None:
        return ((x, y if labelled else None) for x, y in calibrate.make_loader(dataset, batch_size=BATCH))
    images, labels = whole
    return ((images[i:i + BATCH], None if labels is None else labels[i:i + BATCH])
            for i in range(0, len(images), BATCH))
