"""The off-the-shelf alternative in a benchmark (``--baseline CKPT`` of ``compress bench`` and
``compress prune --bench``): the smaller model a user could take instead of pruning.

It is loaded before any long work (a bad checkpoint or ``--arch`` fails with exit 3, a model that
takes other inputs or gives other outputs with exit 2) and becomes one more bench row, named
``alternative``, with its metric on ``--eval``; ``export.report.verdict`` then says whether the
compressed model beats it at equal or lower cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from compress.run.deploy import Side, spec_file
from compress.errors import UsageError
from compress.models.loading import load_model
from compress.spec import LoadedModel
from compress.tasks.evaluate import compare_models, labelled_pairs

NAME = "alternative"
BATCH = 64


def load_baseline(path: str, load: dict, reference: LoadedModel, say: Callable[[str], None]) -> LoadedModel:
    """Load ``path`` with ``load`` (``load_model`` options) and check it can stand beside ``reference``:
    same input size and preprocessing (every row is run on the same images), same output shape."""
    alt = load_model(path, on_note=say, **load)
    if tuple(alt.spec.input_size) != tuple(reference.spec.input_size):
        raise UsageError(f"--baseline {path} takes {tuple(alt.spec.input_size)} inputs, the compared models "
                         f"{tuple(reference.spec.input_size)}", "give a baseline of the same input size")
    if alt.spec.preprocess != reference.spec.preprocess:
        raise UsageError(f"--baseline {path} expects other preprocessing ({alt.spec.preprocess}) than the compared "
                         f"models ({reference.spec.preprocess})",
                         "pass the same --preset/--mean/--std for it, or compare it with compress bench A B")
    example = torch.zeros(2, *reference.spec.input_size)
    with torch.no_grad():
        got, want = _shape(alt.model.eval()(example)), _shape(reference.model.eval()(example))
    if got != want:
        raise UsageError(f"--baseline {path} outputs {got}, the compared models {want}",
                         "give a baseline for the same task and classes (--arch-kwargs num_classes=...)")
    return alt


def _shape(output) -> str:
    if isinstance(output, torch.Tensor):
        return str(tuple(output.shape))
    if isinstance(output, dict):
        return str({k: _shape(v) for k, v in output.items()})
    if isinstance(output, (list, tuple)):
        return str([_shape(v) for v in output])
    return type(output).__name__


def baseline_side(alt: LoadedModel, original: torch.nn.Module, spec_dir: Path, *, trust: bool = False,
                  eval_dir: str | None = None, task=None, say: Callable[[str], None] = print) -> Side:
    """The bench row of ``alt``; with ``eval_dir``, its labelled metric and its agreement with ``original``
    (both on the same images, same preprocessing: ``load_baseline`` checked it)."""
    spec_dir.mkdir(parents=True, exist_ok=True)
    side = Side(NAME, alt.model, str(spec_file(spec_dir, NAME, alt.spec, trust)), sizes={"checkpoint": alt.size_bytes})
    if eval_dir and task is not None:
        data = task.labelled(eval_dir, alt.preprocess(), batch_size=BATCH)
        (_, side.top1), side.agreement = compare_models(task, [original, alt.model], labelled_pairs(data, BATCH))
        say(f"{task.metric_label} on {eval_dir}: {NAME} ({alt.path}) {side.top1:.2%}")
    return side
