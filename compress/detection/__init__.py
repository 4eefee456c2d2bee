"""Detectors as raw-output networks: what compress prunes, proves and exports of a detection model.

A detector's whole forward cannot be traced (image transforms, anchors, box decoding, NMS, per-image
loops). :func:`raw_network` wraps a recognised detector in a module whose forward runs only the traceable
parts -- backbone, FPN/neck, the heads' conv towers and predictors -- and returns the raw head outputs as a
dict (class scores, box regressions: see :data:`compress.tasks.detect.OUTPUT_KINDS`). The wrapper holds the
detector's own submodules under their own names, so its state dict is the detector's (a checkpoint loads
strictly, a pruned folder reloads by replaying the cuts), and every cut reaches the detector, whose
untraced glue is left as it is: ``wrapper.detector`` is the whole (pruned) detection model.

Which detectors are recognised, and how each is wrapped, decoded and timed, is said by the detector
families (``compress.detection.family``: one file each, listed in ``FAMILIES``). Any other model is
returned unchanged.
"""

from __future__ import annotations

import torch.nn as nn


def raw_network(model: nn.Module) -> nn.Module:
    """``model``'s raw-output network when a detector family claims it, else ``model`` itself."""
    from compress.detection.family import family_of

    family = family_of(model)
    return family.wrap(model) if family is not None else model


def is_raw_network(model: nn.Module) -> bool:
    from compress.detection.base import RawDetector

    return isinstance(model, RawDetector)


__all__ = ["is_raw_network", "raw_network"]
