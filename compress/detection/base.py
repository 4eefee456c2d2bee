"""The wrapper every raw-output network shares: the detector's submodules under their own names."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


class RawDetector(nn.Module):
    """A detector's traceable path. Subclasses define ``forward(images) -> dict of raw head outputs``.

    The detector's children are registered here under the same names (same objects), so the state dict,
    module names and cuts are the detector's; extra glue modules added by a subclass must hold no
    parameters or buffers. ``detector`` returns the whole detection model with the current children.
    """

    def __init__(self, detector: nn.Module):
        super().__init__()
        object.__setattr__(self, "_detector", detector)
        for name, child in detector.named_children():
            self.add_module(name, child)
        self.train(detector.training)

    @property
    def detector(self) -> nn.Module:
        """The whole detector (transforms, anchors, decoding, NMS), sharing this network's (pruned) layers."""
        det = self._detector
        for name in list(det._modules):
            det._modules[name] = self._modules[name]
        det.train(self.training)
        return det

    def train(self, mode: bool = True):
        super().train(mode)
        self._detector.training = mode
        return self

    def __deepcopy__(self, memo):
        # copy the detector once and re-wrap it, so the copy's children and its detector's stay one set
        det = copy.deepcopy(self.detector, memo)
        new = type(self).__new__(type(self))
        nn.Module.__init__(new)
        object.__setattr__(new, "_detector", det)
        for name, child in det.named_children():
            new.add_module(name, child)
        for name, child in self._modules.items():
            if name not in new._modules:  # glue modules of the subclass
                new.add_module(name, copy.deepcopy(child, memo))
        for key, value in self.__dict__.items():
            if key not in new.__dict__ and key not in ("_detector",):
                new.__dict__[key] = copy.deepcopy(value, memo)
        new.train(self.training)
        return new


def per_location(t: torch.Tensor, columns: int) -> torch.Tensor:
    """(N, A*K, H, W) -> (N, H*W*A, K): torchvision's anchor-major flattening, written without unpacking
    the shape (so torch.fx can trace it)."""
    return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1, columns)
