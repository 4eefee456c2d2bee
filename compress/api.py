"""The pipeline as a Python API, for notebooks and scripts.

    import compress
    result = compress.prune("ckpt.pt", "imgs/", arch="torchvision:resnet18", ratio=0.5)
    result.model          # the pruned (and recovered) nn.Module
    result.summary        # a RunSummary: the figures of summary.json by attribute (.to_json(): the file)
    compress.prune_model(module, images, ratio=0.5)  # in memory: a module and a (N, C, H, W) tensor, nothing written
    compress.load("ckpt.pruned")  # reload later, no pickle involved
    compress.sweep("ckpt.pt", "imgs/", ratios=(0.2, 0.4, 0.6), arch="torchvision:resnet18").rows

    compress.register_layer(MyLayer, compress.per_channel("channels", ("weight",)))  # a layer of yours
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from compress.calibrate.preprocess import Preprocess
from compress.calibration import calibration_from_tensor, check_enough, checked_images
from compress.errors import UsageError

from compress.prune.importance import ImportanceConfig
from compress.layers.base import LayerHandler, per_channel
from compress.layers.registry import register_layer
from compress.models.loading import load_model
from compress.run.pipeline import QUIET, STDERR, PruneConfig, PruneResult, Reporter, run_prune
from compress.run.pipeline import prune_model as run_prune_model
from compress.prune.plan import PrunePolicy
from compress.recover import DistillConfig
from compress.run.sweep import SweepResult, run_sweep

__all__ = ["LayerHandler", "load", "per_channel", "prune", "prune_model", "register_layer", "sweep"]


def prune(checkpoint: str, calib: str, *, ratio: float | None = None, target_macs: float | None = None,
          arch: str | None = None, arch_kwargs: dict[str, Any] | None = None, out: str | None = None,
          importance: str = "taylor-sq", recover: bool = True, recover_epochs: float | None = None,
          recalibrate_bn: bool = True, task: str = "auto", schedule: str = "oneshot",
          eval_dir: str | None = None, export: tuple[str, ...] = (), bench: bool = False,
          round_to: int = 8, max_layer_ratio: float | None = None, keep: tuple[str, ...] = (), seed: int = 0,
          device: str = "auto", overwrite: bool = False, progress: bool = True, quiet: bool = False,
          **load: Any) -> PruneResult:
    """Prune ``checkpoint`` with importance from the unlabeled images in ``calib``.

    ``load`` takes the loader's options (``trust``, ``preset``, ``input_size``, ``mean``, ``std``).
    ``recalibrate_bn`` re-estimates the cut model's BatchNorm statistics on the calibration images (the model
    written without ``recover``, the one recovery starts from with it).
    ``task``: ``auto`` (from the output's structure), ``classify`` or ``segment`` (``compress.tasks``).
    ``schedule``: ``oneshot`` or ``gradual`` (the cut in stages during recovery, ``compress.prune.schedules``).
    """
    config = _config(str(checkpoint), str(calib), ratio=ratio, target_macs=target_macs, round_to=round_to,
                     max_layer_ratio=max_layer_ratio, keep=keep, importance=importance, seed=seed, device=device,
                     progress=progress, recover=recover, schedule=schedule, recalibrate_bn=recalibrate_bn, task=task,
                     recover_epochs=recover_epochs, out=out, load={"arch": arch, "arch_kwargs": arch_kwargs or {}, **load},
                     eval_dir=eval_dir, export=tuple(export), bench=bench, overwrite=overwrite)
    return run_prune(config, QUIET if quiet else STDERR)


def prune_model(module: nn.Module, images: torch.Tensor, *, ratio: float | None = None,
                target_macs: float | None = None, importance: str = "taylor-sq", recover: bool = True,
                recover_epochs: float | None = None, recalibrate_bn: bool = True, task: str = "auto",
                schedule: str = "oneshot", round_to: int = 8, max_layer_ratio: float | None = None,
                keep: tuple[str, ...] = (), seed: int = 0, device: str = "auto", progress: bool = False,
                quiet: bool = True, preprocess: Preprocess | None = None,
                axes: tuple[str, ...] | None = ("width",)) -> PruneResult:
    """Prune ``module`` in memory with importance from ``images`` (a float (N, C, H, W) tensor, already
    preprocessed for it): what ``prune`` does between loading and writing, the same stages
    (``compress.run.pipeline.prune_model``). ``result.out`` is None; ``result.model`` and ``result.summary``
    are the pruned module and its figures. ``axes``: what ``target_macs`` may shrink; in memory the module
    keeps its input size unless you pass ``("width", "resolution")`` (or None, the CLI's default), and then
    ``result.summary.input_size`` is the size it was planned for."""
    config = _config("<in memory>", "<in memory>", ratio=ratio, target_macs=target_macs, round_to=round_to,
                     max_layer_ratio=max_layer_ratio, keep=keep, importance=importance, seed=seed, device=device,
                     progress=progress, recover=recover, schedule=schedule, recalibrate_bn=recalibrate_bn, task=task,
                     recover_epochs=recover_epochs, axes=axes)
    if not isinstance(module, nn.Module):
        raise UsageError(f"module must be a torch.nn.Module, not {type(module).__name__}", "pass the model itself")
    data = calibration_from_tensor(checked_images(images, module), seed=config.seed,
                                   importance_max=config.importance_images)
    check_enough(data, recover=recover, source="the images tensor")
    was = module.training
    try:
        return run_prune_model(module, data, config=config, preprocess=preprocess, reporter=QUIET if quiet else STDERR)
    finally:
        module.train(was)  # the caller's module comes back in the mode it was given in


def _config(checkpoint: str, calib: str, *, ratio, target_macs, round_to, max_layer_ratio, keep, importance, seed,
            device, progress, recover, schedule, recalibrate_bn, task, recover_epochs, **more: Any) -> PruneConfig:
    ratio, target_macs = _number("ratio", ratio), _number("target_macs", target_macs)
    if ratio is None and target_macs is None:
        ratio = 0.5
    return PruneConfig(
        checkpoint=checkpoint, calib=calib,
        policy=PrunePolicy(ratio=ratio, target_macs=target_macs, round_to=round_to, max_layer_ratio=max_layer_ratio,
                           keep=tuple(keep)),
        importance=ImportanceConfig(name=importance, seed=seed, device=device, progress=progress),
        recover=recover, schedule=schedule, recalibrate_bn=recalibrate_bn, task=task,
        distill=DistillConfig(epochs=recover_epochs, seed=seed), seed=seed, device=device, progress=progress, **more)


def _number(name: str, value: Any) -> float | None:
    """A ratio given as ``"0.5"`` (from a config file, a widget) is that number; anything else not a number is
    one line (the policy checks its range)."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise UsageError(f"{name} must be a number, got {value!r}", f"e.g. {name}=0.5")


def sweep(checkpoint: str, calib: str, ratios: tuple[float, ...] = (0.2, 0.4, 0.6), *, out: str | None = None,
          arch: str | None = None, arch_kwargs: dict[str, Any] | None = None, importance: str = "taylor-sq",
          recover: bool = True, recover_epochs: float | None = None, eval_dir: str | None = None,
          backend: str = "onnxruntime", batch: int = 1, round_to: int = 8, device: str = "auto",
          overwrite: bool = False, quiet: bool = False, reporter: Reporter | None = None,
          baseline: tuple[str, dict[str, Any]] | None = None, **load: Any) -> SweepResult:
    """What ``compress sweep`` does: prune at each ratio into ``out/ratio-R`` (default ``CHECKPOINT.sweep``),
    time them beside the original and return the table (``.rows``), the report and the plot. ``compress sweep``
    calls it with the terminal as ``reporter``. ``baseline``: (checkpoint, load options) of an off-the-shelf
    alternative, timed beside them and plotted as a point."""
    ratios = tuple(sorted(set(ratios)))
    base = PruneConfig(checkpoint=str(checkpoint), calib=str(calib), policy=PrunePolicy(ratio=ratios[0], round_to=round_to),
                       load={"arch": arch, "arch_kwargs": arch_kwargs or {}, **load},
                       importance=ImportanceConfig(name=importance, device=device), recover=recover,
                       distill=DistillConfig(epochs=recover_epochs), eval_dir=eval_dir, overwrite=True, device=device)
    root = out or Path(checkpoint).with_suffix(".sweep")
    return run_sweep(base, ratios, root, backend=backend, batch=batch, overwrite=overwrite,
                     reporter=reporter or (QUIET if quiet else STDERR), baseline=baseline)


def load(path: str, **options: Any):
    """Load any model ``compress`` accepts (a pruned folder needs no options) -> LoadedModel."""
    return load_model(path, **options)
