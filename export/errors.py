"""Errors of :mod:`export`: same protocol as ``compress.errors.CompressError``.

``compress.export`` imports nothing of ``compress`` but ``compress.calibrate`` and ``compress.util``, so it
keeps its own base class.
The CLI recognises it by its ``exit_code`` and ``hint`` attributes and prints
``error: <message> (<hint>)``.
"""

from __future__ import annotations


class ExportError(RuntimeError):
    """A model that cannot be exported, quantized, built or measured as asked."""

    exit_code = 5

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class VerificationError(ExportError):
    """An exported model whose outputs do not match the PyTorch model it came from."""


class RuntimeUnavailable(ExportError):
    """An optional runtime (OpenVINO, ExecuTorch...) that cannot run here; the message says which extra to install."""


class TensorRTUnavailable(RuntimeUnavailable):
    """TensorRT (or a CUDA GPU) is missing; ``message`` is the one-line reason."""
