"""Recovery after a cut: self-distillation from the original, BatchNorm re-estimation, and the figures
(agreement with the original, top-1) every stage reports.

One file per concern: ``config`` (what a run is asked to do), ``budget`` (steps, time cap, schedule),
``precision`` (float32 or autocast), ``teacher`` (the frozen, BatchNorm-folded original), ``augment``,
``feature_match``, ``ema`` (the averaged weights that are judged), ``selection`` (which check comes back),
``metrics``, ``views`` (an opt-in pool of cached teacher outputs), ``loop`` (the run); ``batchnorm`` (re-estimation without training),
``repair`` (least-squares refit of the layers the cut disturbed, without training) and ``fit_gap`` (training vs
held-out agreement).
"""

from compress.recover.batchnorm import RECALIBRATE_IMAGES, recalibrate_batchnorm, recalibrate_if_better
from compress.recover.config import AUTO_MINUTES, DistillConfig, DistillConfigError, auto_epochs
from compress.recover.fit_gap import significant_gap, train_sample
from compress.recover.loop import DistillResult, distill
from compress.recover.metrics import agreement, image_batches, top1_accuracy
from compress.recover.precision import amp_dtype, cpu_bf16
from compress.recover.repair import REPAIR_IMAGES, RepairResult, repair_cut
from compress.recover.selection import not_worse

__all__ = [
    "AUTO_MINUTES", "RECALIBRATE_IMAGES", "DistillConfig", "DistillConfigError", "DistillResult", "agreement",
    "amp_dtype", "auto_epochs", "cpu_bf16", "distill", "image_batches", "not_worse", "recalibrate_batchnorm",
    "recalibrate_if_better", "REPAIR_IMAGES", "RepairResult", "repair_cut", "significant_gap", "top1_accuracy", "train_sample",
]
