"""Resolve what ``compress bench`` compares: a pruned folder and its original, or any A and B."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from compress import artifacts
from compress.calibration import unlabelled_batches
from compress.run.deploy import CHECK_IMAGES, Side, first_images, found_artifacts, spec_file
from compress.errors import UsageError
from compress.models.loading import load_from_spec, load_model
from compress.run.sibling import baseline_side, load_baseline
from compress.spec import LoadedModel
from compress.tasks import task_of
from compress.tasks.evaluate import compare_models, labelled_pairs

BATCH = 64  # images per forward pass: a whole eval folder at once can need tens of GB of activations


def load_sides(first: str, second: str | None, out: str | None, eval_dir: str | None, calib: str | None,
               load: dict, say: Callable[[str], None],
               baseline: tuple[str, dict] | None = None) -> tuple[list[Side], tuple[int, ...], Path, Any]:
    """(the sides: the two compared, then ``baseline``'s (path, load options) alternative if given; the input
    shape, the report folder, the models' task)."""
    a = load_model(first, on_note=say, **load)
    names = ("original", "compressed")
    if second is None:
        if not a.pruned:
            raise UsageError(f"{first} is not a compress output folder", "give two models: compress bench A B")
        original, compressed = load_from_spec(a.spec, trust=load.get("trust", False),
                                              where=str(Path(first) / artifacts.RECORD)), a
        out_dir = Path(out) if out else Path(first)
        calib = calib or a.recorded_calib
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
    alt = load_baseline(baseline[0], baseline[1], compressed, say) if baseline else None
    task = _task(original, compressed)
    # the labelled data is read (and its labels checked against the model's classes) before any file is written
    evaluation = task.labelled(eval_dir, compressed.preprocess(), batch_size=BATCH) if eval_dir else None
    out_dir.mkdir(parents=True, exist_ok=True)
    sides = [_side(names[0], original, out_dir, load), _side(names[1], compressed, out_dir, load)]
    if eval_dir:
        _accuracy(sides, eval_dir, evaluation, say, task)
    elif calib and Path(calib).is_dir():
        _agreement(sides, calib, compressed, say, task)
    if alt is not None:
        sides.append(baseline_side(alt, original.model, out_dir, trust=baseline[1].get("trust", False),
                                   eval_dir=eval_dir, task=task, say=say))
    return sides, tuple(original.spec.input_size), out_dir, task


def _task(loaded: LoadedModel, compressed: LoadedModel | None = None):
    """The models' task, from the original's output on a random batch of its input size: the task (and
    ``--decode``) the compressed folder's run was given, else ``auto``."""
    config = ((compressed.record if compressed is not None else None) or {}).get("config") or {}
    return task_of(loaded.model, torch.randn(2, *loaded.spec.input_size), config.get("task") or "auto",
                   config.get("decode"))


def pruned_from(model: LoadedModel, original: str) -> bool:
    """Whether ``model`` is a compress output whose record names ``original`` as the checkpoint it was pruned from."""
    if not model.pruned:
        return False
    recorded = (model.record or {}).get("original", {}).get("checkpoint") or model.spec.checkpoint
    return bool(recorded) and Path(recorded).resolve() == Path(original).resolve()


def check_owned_files(folder: Path) -> None:
    """Refuse (exit 3) a folder whose ``export.json`` records weights other than its own ``model.safetensors``:
    its runtime files were exported from another model, and timing them would give this folder's figures to
    that model's files."""
    import json

    from compress.artifacts.saved import source_of
    from compress.errors import CheckpointError

    try:
        recorded = json.loads((folder / artifacts.EXPORT).read_text()).get("source")
    except (OSError, ValueError, AttributeError):
        return  # no export here (or an older one without a record): nothing to compare
    if not isinstance(recorded, dict) or "sha256" not in recorded:
        return
    own = source_of(folder)
    if own is None or own["sha256"] != recorded["sha256"]:
        raise CheckpointError(f"{folder / artifacts.EXPORT} records weights sha256 {str(recorded['sha256'])[:12]}…, "
                              f"not this folder's {artifacts.WEIGHTS} ({(own or {}).get('sha256', 'absent')[:12]}…): "
                              "its exported files belong to another model", f"re-export: compress export {folder}")


def _side(name: str, loaded: LoadedModel, out_dir: Path, load: dict) -> Side:
    if loaded.pruned:
        check_owned_files(loaded.path)
        arg = str(loaded.path)
        files = {attr: loaded.path / name for attr, name in artifacts.MODEL_FILES.items()}
    else:
        arg = str(spec_file(out_dir, name, loaded.spec, load.get("trust", False)))
        files = {}
    side = Side(name, loaded.model, arg, sizes={"checkpoint": loaded.size_bytes}, trust=bool(load.get("trust", False)),
                artifacts=found_artifacts(loaded.path) if loaded.pruned else {})
    for attr, path in files.items():
        if path.exists():
            setattr(side, attr, path)
    return side


def _kept(sides: list[Side], batches, limit: int = CHECK_IMAGES):
    """Pass ``batches`` through, keeping the first ``limit`` images (and labels) on both sides as ``check``:
    every runtime's file is run on them for its own top-1 and agreement (``compress.run.deploy.row_figures``)."""
    seen, n = [], 0
    for x, y in batches:
        if n < limit:
            seen.append((x, y))
            n += len(x)
        yield x, y
    check = first_images(seen, limit)
    if check is not None:
        for side in sides:
            side.check = check


def _checked(sides: list[Side], task, batches):
    """Classifiers: keep the first images for every runtime's own top-1 check (``row_figures`` reads logits)."""
    return _kept(sides, batches) if task.name == "classify" else batches


def _accuracy(sides: list[Side], eval_dir: str, data, say, task) -> None:
    metrics, agreement = compare_models(task, [side.module for side in sides], _checked(sides, task, labelled_pairs(data, BATCH)))
    sides[0].top1, sides[1].top1 = metrics
    sides[0].agreement, sides[1].agreement = 1.0, agreement
    say(f"{task.metric_label} on {eval_dir}: {sides[0].name} {sides[0].top1:.2%}, {sides[1].name} {sides[1].top1:.2%}")


def _agreement(sides: list[Side], calib: str, loaded: LoadedModel, say, task) -> None:
    batches, n = _unlabelled(calib, loaded)
    _, agreement = compare_models(task, [side.module for side in sides], _checked(sides, task, batches))
    sides[0].agreement, sides[1].agreement = 1.0, agreement
    say(f"{task.agreement_label} on {n} images of {calib}: {sides[1].agreement:.2%}")


def _unlabelled(folder: str, loaded: LoadedModel):
    """(``(images, None)`` batches of up to 500 images, their number)."""
    batches, n = unlabelled_batches(folder, loaded.preprocess(), max_images=500, batch_size=BATCH)
    return ((x, None) for x in batches), n
