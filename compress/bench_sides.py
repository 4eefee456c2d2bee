"""Resolve what ``compress bench`` compares: a pruned folder and its original, or any A and B."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from compress.deploy import Side, spec_file
from compress.errors import UsageError
from compress.loading import load_from_spec, load_model
from compress.spec import LoadedModel


def load_sides(first: str, second: str | None, out: str | None, eval_dir: str | None, calib: str | None,
               load: dict, say: Callable[[str], None]) -> tuple[list[Side], tuple[int, ...], Path]:
    a = load_model(first, on_note=say, **load)
    if second is None:
        if not a.pruned:
            raise UsageError(f"{first} is not a compress output folder", "give two models: compress bench A B")
        original, compressed = load_from_spec(a.spec, trust=load.get("trust", False)), a
        out_dir = Path(out) if out else Path(first)
        calib = calib or (a.record or {}).get("config", {}).get("calib")
    else:
        original, compressed = a, load_model(second, on_note=say, **load)
        out_dir = Path(out) if out else Path("bench-report")
    if tuple(original.spec.input_size) != tuple(compressed.spec.input_size):
        raise UsageError(f"the two models take different inputs ({original.spec.input_size} vs {compressed.spec.input_size})",
                         "compare models of the same input size")
    out_dir.mkdir(parents=True, exist_ok=True)
    sides = [_side("original", original, out_dir, load), _side("compressed", compressed, out_dir, load)]
    if eval_dir:
        _accuracy(sides, eval_dir, compressed, say)
    elif calib and Path(calib).is_dir():
        _agreement(sides, calib, compressed, say)
    return sides, tuple(original.spec.input_size), out_dir


def _side(name: str, loaded: LoadedModel, out_dir: Path, load: dict) -> Side:
    if loaded.pruned:
        arg = str(loaded.path)
        files = {"onnx": loaded.path / "model.onnx", "int8": loaded.path / "model.int8.onnx",
                 "engine": loaded.path / "model.engine"}
    else:
        arg = str(spec_file(out_dir, name, loaded.spec, load.get("trust", False)))
        files = {}
    side = Side(name, loaded.model, arg, sizes={"checkpoint": loaded.size_bytes})
    for attr, path in files.items():
        if path.exists():
            setattr(side, attr, path)
    return side


def _images(folder: str, loaded: LoadedModel, labelled: bool):
    from calibrate import ImageDataset, LabelledFolder, preload, preload_labelled, scan_folder
    from calibrate.preprocess import Preprocess

    pre = Preprocess.from_dict(loaded.spec.preprocess)
    if labelled:
        return preload_labelled(LabelledFolder(folder, pre))
    return preload(ImageDataset(scan_folder(folder, max_images=500).paths, pre)), None


def _accuracy(sides: list[Side], eval_dir: str, loaded: LoadedModel, say) -> None:
    from compress.distill import top1_accuracy

    images, labels = _images(eval_dir, loaded, labelled=True)
    preds = {}
    for side in sides:
        side.top1 = top1_accuracy(side.module, images, labels)
        with torch.no_grad():
            preds[side.name] = side.module.eval()(images).argmax(1)
    sides[1].agreement = float((preds["original"] == preds["compressed"]).float().mean())
    sides[0].agreement = 1.0
    say(f"accuracy on {eval_dir}: original {sides[0].top1:.2%}, compressed {sides[1].top1:.2%}")


def _agreement(sides: list[Side], calib: str, loaded: LoadedModel, say) -> None:
    images, _ = _images(calib, loaded, labelled=False)
    with torch.no_grad():
        a = sides[0].module.eval()(images).argmax(1)
        b = sides[1].module.eval()(images).argmax(1)
    sides[0].agreement, sides[1].agreement = 1.0, float((a == b).float().mean())
    say(f"top-1 agreement with the original on {len(images)} images of {calib}: {sides[1].agreement:.2%}")
