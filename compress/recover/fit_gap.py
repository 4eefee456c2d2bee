"""Does the recovered student match the original better on the images it trained on than on unseen ones?

After recovery the student is measured twice against the original: on the held-out images (never trained
on) and on a sample of its clean, unaugmented training images. A gap well beyond what the two sample
sizes explain means recovery is bound by the number of distinct images, not by the schedule (measured:
benchmarks/RESULTS.md, "Training-image gap"). With only a few hundred held-out images a gap of that size can sit inside the noise, so the hint is given only
when it is clear; the two figures are always reported. Saying so tells a user that more unlabeled images are
what helps.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from compress.recover.metrics import agreement

TRAIN_SAMPLE = 1000  # training images measured at most (evenly spaced): a forward pass over them, no more
Z = 2.0  # a gap counts when it exceeds Z standard errors of the difference of the two proportions
MIN_IMAGES = 30  # fewer held-out (or training) images than this: no judgement, the error estimate is unsound


def train_sample(images: Any, n: int = TRAIN_SAMPLE) -> torch.Tensor | None:
    """Up to ``n`` training images: evenly spaced from a tensor, the first batches of a loader."""
    if n < 1:
        return None
    if isinstance(images, torch.Tensor):
        if images.shape[0] == 0:
            return None
        idx = torch.linspace(0, images.shape[0] - 1, min(n, images.shape[0])).round().long().unique()
        return images[idx]
    got: list[torch.Tensor] = []
    count = 0
    for batch in images:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        got.append(x[: n - count])
        count += got[-1].shape[0]
        if count >= n:
            break
    return torch.cat(got) if got else None


def significant_gap(train_agreement: float, n_train: int, holdout_agreement: float, n_holdout: int,
                    z: float = Z) -> bool:
    """Whether training-image agreement exceeds held-out agreement by more than ``z`` standard errors."""
    if n_train < MIN_IMAGES or n_holdout < MIN_IMAGES:
        return False
    gap = train_agreement - holdout_agreement
    var = (train_agreement * (1 - train_agreement) / n_train
           + holdout_agreement * (1 - holdout_agreement) / n_holdout)
    return gap > z * math.sqrt(var)  # strictly above a non-negative bound: never for a zero or negative gap


def fit_on_training_images(student: torch.nn.Module, teacher: torch.nn.Module, images: Any, held_out: float,
                           counts: dict, *, device: str | torch.device = "cpu", task=None,
                           say: Callable[[str], None] | None = None) -> dict:
    """The recovered ``student``'s agreement with ``teacher`` on a sample of its clean training ``images``, next
    to its ``held_out`` agreement; says so (``say``) when it is significantly higher: recovery bound by the number
    of distinct images. ``counts``: the calibration split's (``distill``, ``holdout`` images). The figures are the
    run record's ``agreement_train``, ``kl_train`` and ``agreement_train_images`` (none without a sample)."""
    sample = train_sample(images)
    if sample is None:
        return {}
    agree, kl = agreement(student, teacher, sample, device=device, task=task)
    n_train, n_held = sample.shape[0], counts.get("holdout", 0)
    if say is not None and significant_gap(agree, n_train, held_out, n_held):
        say(f"recovery: the student agrees with the original on {agree:.1%} of {n_train} training images "
            f"but {held_out:.1%} of {n_held} held-out ones: it is bound by the number of "
            f"distinct images ({counts.get('distill', n_train)}); more unlabeled images in --calib "
            "should help more than a longer schedule")
    return {"agreement_train": round(agree, 5), "kl_train": round(kl, 5), "agreement_train_images": n_train}
