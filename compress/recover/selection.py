"""Which weights a run returns: the best held-out check, where differences the held-out split cannot
resolve go to the later check.

With 200 held-out images one check's agreement is only known to about +-2.5 points, and the highest
raw figure once kept weights from well before the end of the schedule; so a later check that is not
measurably worse than the highest one (:func:`not_worse`, with at least ``SELECT_MIN_IMAGES`` held out)
replaces it.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

SELECT_Z = 2.0  # an earlier check is kept over a later one only when it agrees on more held-out images by more
# than this many standard errors of the paired difference (see not_worse)
SELECT_MIN_IMAGES = 100  # below this many held-out images the test is too coarse (a few images, all going one way,
# would still count as a tie): the highest agreement wins, ties -> the later check


def not_worse(best_hits: torch.Tensor, hits: torch.Tensor, z: float = SELECT_Z) -> bool:
    """Whether a later check (``hits``: per held-out image, 1 where the student agrees with the teacher)
    is not measurably worse than the best one seen (``best_hits``, same images).

    Paired sign test: of the images where exactly one of the two agrees, the best must win more than
    ``z`` standard errors (sqrt of their number) beyond an even split to count as better. Per-image
    fractions (a segmenter's pixel agreement) take the same test with sqrt(sum of squared differences),
    which is the sign test's figure for 0/1 values.
    """
    diff = best_hits.float() - hits.float()
    return diff.sum().item() <= z * math.sqrt((diff * diff).sum().item())


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``model``'s state dict."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class Selection:
    """The checks seen so far of ``model`` (the judged weights): the highest agreement (ties -> later), and
    what comes back (``agreement``, ``kl``, ``step``, ``state``), starting with the incoming weights."""

    def __init__(self, model: nn.Module, agreement: float, kl: float, hits: torch.Tensor):
        self.model = model
        self.top_agreement, self.top_hits = agreement, hits
        self.agreement, self.kl, self.step, self.state = agreement, kl, 0, snapshot(model)

    def offer(self, step: int, agreement: float, kl: float, hits: torch.Tensor) -> None:
        """Consider the check at ``step``; a non-finite KL is never kept."""
        if not math.isfinite(kl):
            return
        highest = agreement >= self.top_agreement  # ties -> the later check
        if highest:
            self.top_agreement, self.top_hits = agreement, hits
        tie = not highest and hits.numel() >= SELECT_MIN_IMAGES and not_worse(self.top_hits, hits)
        if highest or tie:
            self.agreement, self.kl, self.step, self.state = agreement, kl, step, snapshot(self.model)
