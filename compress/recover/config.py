"""What one distillation run is asked to do: :class:`DistillConfig`, checked when built, and the automatic budget.

Budget (``epochs`` / ``steps``; both ``None`` = automatic, see :func:`auto_epochs`): few images need
many augmented passes; many images need fewer passes, and fewer samples in all, since distinct
images carry more than repeated ones. The runs behind these choices and the defaults below (figures,
seeds, machines) are in benchmarks/RESULTS.md, section "Distillation defaults".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from compress.errors import UsageError
from compress.recover.augment import AUGMENTS, PAD_MODES

OPTIMIZERS = ("sgd", "adamw")
AMP_MODES = ("auto", "off", "bf16", "fp16")
CHANNELS_LAST_MODES = ("auto", "on", "off")
AUTO_SAMPLES = 216_000  # augmented images seen by the automatic budget at and below...
AUTO_KNEE = 1_800  # ...this many training images (120 epochs); beyond, samples fall as 1/sqrt(n)
AUTO_MINUTES = 9.5  # wall-time cap of the automatic budget (an explicit epochs/steps budget has none): the issue's
# 10 minutes less a margin; 9.5 against the earlier 8: benchmarks/RESULTS.md, "Distillation defaults"
AUTO_EVALS = 12  # held-out evaluations per run when eval_every is None
CAP_FIRST_CHECK = 20  # steps timed before the time cap first estimates how many fit


class DistillConfigError(UsageError, ValueError):
    """A distillation setting that cannot work (a ValueError the CLI can print)."""


def auto_epochs(n_train: int, samples: int = AUTO_SAMPLES) -> float:
    """Automatic epochs for ``n_train`` training images.

    samples = 216k * min(1, sqrt(1800 / n)), epochs = max(1, samples / n):
    200 images -> 1,080 epochs, 1,800 -> 120, 4,500 -> 30.4 (137k samples), 9,000 -> 10.7,
    18,000 -> 3.8, 129,600 or more -> 1. On 2 CPU cores 120 epochs of a half-pruned CIFAR ResNet
    do not fit in float32, so the automatic budget also stops at ``AUTO_MINUTES`` of wall time
    (``DistillConfig.max_minutes``): the schedule shrinks to the steps that fit. Measured epochs, times
    and recovered top-1: benchmarks/RESULTS.md, "Distillation defaults".
    """
    if n_train <= 0:
        raise DistillConfigError("no training images", "give at least one calibration image")
    samples = samples * min(1.0, math.sqrt(AUTO_KNEE / n_train))
    return float(max(1.0, samples / n_train))


@dataclass(frozen=True)
class DistillConfig:
    """Distillation settings. Set at most one of ``epochs`` / ``steps`` (neither = automatic)."""

    epochs: float | None = None
    steps: int | None = None
    batch_size: int = 64
    lr: float | None = None  # peak learning rate; None: the task's (compress.tasks: 0.01 for a classifier, 0.05
    # for a segmenter)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    temperature: float = 4.0
    warmup_fraction: float = 0.03
    augment: str = "auto"
    pad_mode: str = "reflect"
    cutmix: float = 0.5
    features: float = 0.0  # weight of stage-output feature matching (compress.recover.feature_match); 0 = off
    ema: float = 0.999  # decay of a moving average of the student's weights (0 = off); when on, the held-out
    # checks measure, and the run returns, the average (why: benchmarks/RESULTS.md, "Distillation defaults")
    max_minutes: float | None = None  # wall-time cap; None = AUTO_MINUTES for the automatic budget, else none
    eval_every: int | None = None
    amp: str = "auto"
    channels_last: str = "auto"
    teacher_views: int = 0  # augmented views per training image whose teacher outputs are computed once and
    # reused (compress.recover.views); 0 = fresh augmentation and a teacher pass every step
    seed: int = 0

    def __post_init__(self) -> None:
        def bad(msg: str, hint: str) -> None:
            raise DistillConfigError(msg, hint)

        if self.epochs is not None and self.steps is not None:
            bad("both epochs and steps are set", "give one budget: epochs or steps")
        if self.epochs is not None and not (self.epochs > 0 and math.isfinite(self.epochs)):
            bad(f"epochs must be a positive number, got {self.epochs}", "e.g. epochs=30")
        if self.steps is not None and (not _is_int(self.steps) or self.steps < 1):
            bad(f"steps must be a positive integer, got {self.steps!r}", "e.g. steps=1000")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            bad(f"batch_size must be a positive integer, got {self.batch_size!r}", "e.g. 64")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            bad(f"lr must be positive, got {self.lr}", "e.g. 0.1 for sgd, 1e-3 for adamw")
        if not 0 <= self.momentum < 1:
            bad(f"momentum must be in [0, 1), got {self.momentum}", "e.g. 0.9")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            bad(f"weight_decay must be >= 0, got {self.weight_decay}", "e.g. 5e-4")
        if self.optimizer not in OPTIMIZERS:
            bad(f"unknown optimizer {self.optimizer!r}", f"choose one of {', '.join(OPTIMIZERS)}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            bad(f"temperature must be positive, got {self.temperature}", "e.g. 4")
        if not 0 <= self.warmup_fraction < 1:
            bad(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}", "e.g. 0.03")
        if self.augment not in AUGMENTS:
            bad(f"unknown augment {self.augment!r}", f"choose one of {', '.join(AUGMENTS)}")
        if self.pad_mode not in PAD_MODES:
            bad(f"unknown pad_mode {self.pad_mode!r}", f"choose one of {', '.join(PAD_MODES)}")
        if not 0 <= self.cutmix <= 1:
            bad(f"cutmix probability must be in [0, 1], got {self.cutmix}", "e.g. 0.5, or 0 to disable")
        if not (self.features >= 0 and math.isfinite(self.features)):
            bad(f"features weight must be >= 0, got {self.features}", "e.g. 1.0, or 0 to disable")
        if not 0 <= self.ema < 1:
            bad(f"ema decay must be in [0, 1), got {self.ema}", "e.g. 0.999, or 0 to disable")
        if self.max_minutes is not None and not (self.max_minutes > 0 and not math.isnan(self.max_minutes)):
            bad(f"max_minutes must be positive, got {self.max_minutes}", f"e.g. {AUTO_MINUTES:g}, or inf for no cap")
        if self.eval_every is not None and (not _is_int(self.eval_every) or self.eval_every < 1):
            bad(f"eval_every must be a positive integer, got {self.eval_every!r}", "or None for automatic")
        if self.amp not in AMP_MODES:
            bad(f"unknown amp mode {self.amp!r}", f"choose one of {', '.join(AMP_MODES)}")
        if self.channels_last not in CHANNELS_LAST_MODES:
            bad(f"unknown channels_last mode {self.channels_last!r}", f"choose one of {', '.join(CHANNELS_LAST_MODES)}")
        if not _is_int(self.teacher_views) or self.teacher_views < 0:
            bad(f"teacher_views must be a non-negative integer, got {self.teacher_views!r}", "e.g. 16, or 0 for off")
        if not _is_int(self.seed):
            bad(f"seed must be an integer, got {self.seed!r}", "e.g. 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
