"""The self-decoding family: a raw-output network that carries its own decoding, as the embedded DetDigitNet
does (``compress.archs.detdigits``) and a user's network may.

Such a network's ``forward`` already returns the raw outputs (nothing to wrap); ``postprocess(outputs,
image_size)`` decodes them (peaks or anchors, boxes, NMS) and ``detector`` is the whole detector (images in
[0, 1] -> boxes, scores, labels per image) sharing the network's layers. Both are found on the network
itself, so the family is recognised by that protocol, not by a class.
"""

from __future__ import annotations

import torch.nn as nn

from compress.detection.family import Family


def _claims(model: nn.Module) -> bool:
    return callable(getattr(model, "postprocess", None)) and hasattr(type(model), "detector")


FAMILY = Family("the embedded detector", claims=_claims, wrap=lambda model: model,
                postprocess=lambda net, outputs, size: net.postprocess(outputs, size))
