"""Errors of :mod:`export`: subclasses of the shared ``compress.util.errors.CompressError`` (one line,
a hint, an exit code), which the CLI prints as ``error: <message> (<hint>)``."""

from __future__ import annotations

from compress.util.errors import CompressError


class ExportError(CompressError, RuntimeError):
    """A model that cannot be exported, quantized, built or measured as asked."""

    exit_code = 5


class VerificationError(ExportError):
    """An exported model whose outputs do not match the PyTorch model it came from."""


class RuntimeUnavailable(ExportError):
    """An optional runtime (OpenVINO, ExecuTorch...) that cannot run here; the message says which extra to install."""


class TensorRTUnavailable(RuntimeUnavailable):
    """TensorRT (or a CUDA GPU) is missing; ``message`` is the one-line reason."""
