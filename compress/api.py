"""The pipeline as a Python API, for notebooks and scripts.

    import compress
    result = compress.prune("ckpt.pt", "imgs/", arch="torchvision:resnet18", ratio=0.5)
    result.model          # the pruned (and recovered) nn.Module
    result.summary        # the same figures as summary.json
    compress.load("ckpt.pruned")  # reload later, no pickle involved
"""

from __future__ import annotations

from typing import Any

from compress.importance import ImportanceConfig
from compress.loading import load_model
from compress.pipeline import QUIET, STDERR, PruneConfig, PruneResult, run_prune
from compress.plan import PrunePolicy
from compress.recover import DistillConfig


def prune(checkpoint: str, calib: str, *, ratio: float | None = None, target_macs: float | None = None,
          arch: str | None = None, arch_kwargs: dict[str, Any] | None = None, out: str | None = None,
          importance: str = "taylor-sq", recover: bool = True, recover_epochs: float | None = None,
          recalibrate_bn: bool = True, task: str = "auto",
          eval_dir: str | None = None, export: tuple[str, ...] = (), bench: bool = False,
          round_to: int = 8, max_layer_ratio: float | None = None, keep: tuple[str, ...] = (), seed: int = 0,
          device: str = "auto", overwrite: bool = False, progress: bool = True, quiet: bool = False,
          **load: Any) -> PruneResult:
    """Prune ``checkpoint`` with importance from the unlabeled images in ``calib``.

    ``load`` takes the loader's options (``trust``, ``preset``, ``input_size``, ``mean``, ``std``).
    Without ``recover``, ``recalibrate_bn`` re-estimates BatchNorm statistics on the calibration images.
    ``task``: ``auto`` (from the output's structure), ``classify`` or ``segment`` (``compress.tasks``).
    """
    if ratio is None and target_macs is None:
        ratio = 0.5
    config = PruneConfig(
        checkpoint=str(checkpoint), calib=str(calib), out=out,
        load={"arch": arch, "arch_kwargs": arch_kwargs or {}, **load},
        policy=PrunePolicy(ratio=ratio, target_macs=target_macs, round_to=round_to, max_layer_ratio=max_layer_ratio,
                           keep=tuple(keep)),
        importance=ImportanceConfig(name=importance, seed=seed, device=device, progress=progress),
        recover=recover, recalibrate_bn=recalibrate_bn, task=task, distill=DistillConfig(epochs=recover_epochs, seed=seed),
        eval_dir=eval_dir,
        export=tuple(export), bench=bench, seed=seed, device=device, overwrite=overwrite, progress=progress,
    )
    return run_prune(config, QUIET if quiet else STDERR)


def load(path: str, **options: Any):
    """Load any model ``compress`` accepts (a pruned folder needs no options) -> LoadedModel."""
    return load_model(path, **options)
