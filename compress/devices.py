"""``--device`` values: ``auto`` (the GPU when there is one, else the CPU), ``cpu``, ``cuda``, ``cuda:N``."""

from __future__ import annotations

import torch

from compress.errors import UsageError
from compress.util.modules import device_of

__all__ = ["device_of", "resolve_device"]  # device_of lives in compress.util (export uses it too)


def resolve_device(device: str | torch.device) -> torch.device:
    """The torch device ``device`` names; a clear error for a name torch does not know or a GPU that is not there."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"unknown device {str(device)!r}", "use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {str(device)!r} requested but no CUDA GPU is available", "use --device cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UsageError(f"device {str(device)!r} requested but this machine has {torch.cuda.device_count()} "
                         "CUDA device(s)", "use cuda:0 or auto")
    return dev

