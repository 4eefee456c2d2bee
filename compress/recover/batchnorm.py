"""Re-estimate a pruned model's BatchNorm statistics on unlabeled images: no labels, no training.

Removing channels upstream of a BatchNorm changes what it normalises, so the running mean and
variance it kept from the original training no longer fit. One pass over a few hundred calibration
images, with only the BatchNorms in train mode and a cumulative average (``momentum=None``), refits
them; weights and every other layer stay as they were (measured: benchmarks/RESULTS.md, "BatchNorm
re-estimation"). What ``compress prune --no-recover`` writes; recovery by distillation refits them anyway.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from compress.devices import device_of
from compress.errors import UsageError
from compress.recover.metrics import agreement, image_batches

RECALIBRATE_IMAGES = 512  # more bought nothing measurable (benchmarks/RESULTS.md, "BatchNorm re-estimation")


def batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, images: Any, *, max_images: int = RECALIBRATE_IMAGES,
                          batch_size: int = 256, device: str | torch.device = "cpu") -> int:
    """Refit the running statistics of every BatchNorm in ``model`` on up to ``max_images`` of
    ``images`` (a float tensor (N,3,H,W) or a loader of batches / ``(batch, index)`` tuples).

    Returns how many layers were refitted. Modes, momenta and the model's device are restored.
    """
    norms = batchnorms(model)
    if not norms:
        return 0
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    home = device_of(model)
    modes = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for m in norms}
    model.to(device).eval()
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches seen
            m.train()
        seen = 0
        for x in image_batches(images, batch_size):
            x = x[: max_images - seen].to(device)
            model(x)
            seen += len(x)
            if seen >= max_images:
                break
        if seen == 0:
            raise UsageError("no images to re-estimate BatchNorm statistics on", "give a folder with images")
    except BaseException:  # a failed pass (or Ctrl-C): put back the statistics it started from
        for m, (mean, var, count) in zip(norms, saved):
            m.running_mean.copy_(mean), m.running_var.copy_(var), m.num_batches_tracked.copy_(count)
        raise
    finally:
        for m in norms:
            m.momentum = momenta[m]
        for m, mode in modes.items():
            m.training = mode
        model.to(home)
    return len(norms)



JUDGE_MIN_IMAGES = 100  # fewer held-out images than this cannot tell a few points of agreement apart


def recalibrate_if_better(student: nn.Module, original: nn.Module, images: Any, holdout: Any, *, held_out: int,
                          device: str | torch.device = "cpu", max_images: int = RECALIBRATE_IMAGES,
                          task=None) -> dict[str, Any]:
    """Re-estimate ``student``'s BatchNorm statistics on ``images``, and keep them only when top-1
    agreement with ``original`` on ``holdout`` (``held_out`` images) does not fall; otherwise the
    stale statistics are put back (``task``: whose agreement, top-1 by default). Returns the figures for the summary, with ``bn_note``: what was
    decided and why, in one sentence for the user.
    """
    norms = batchnorms(student)
    before, kl_before = agreement(student, original, holdout, device=device, task=task)
    out: dict[str, Any] = {"agreement_pruned": round(before, 5), "kl_pruned": round(kl_before, 5), "bn_recalibrated": 0}
    if not norms:
        return out
    stale = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    layers = recalibrate_batchnorm(student, images, max_images=max_images, device=device)
    after, kl_after = agreement(student, original, holdout, device=device, task=task)
    small = (f"; only {held_out} held-out images, too few to judge reliably (give --calib a few hundred or more)"
             if held_out < JUDGE_MIN_IMAGES else "")
    figures = f"held-out agreement {before:.1%} -> {after:.1%}"
    if after < before:
        for m, (mean, var, count) in zip(norms, stale):
            m.running_mean.copy_(mean), m.running_var.copy_(var), m.num_batches_tracked.copy_(count)
        return {**out, "bn_rejected": {"agreement": round(after, 5), "kl": round(kl_after, 5)},
                "bn_note": f"kept the original BatchNorm statistics: re-estimating them lowered {figures}{small}"}
    return {**out, "bn_recalibrated": layers, "agreement_recalibrated": round(after, 5),
            "kl_recalibrated": round(kl_after, 5),
            "bn_note": f"{layers} layers' BatchNorm statistics re-estimated: {figures}{small}"}
