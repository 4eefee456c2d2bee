"""The one error class of :mod:`calibrate`: same protocol as ``compress.errors.CompressError``.

``compress.calibrate`` imports nothing of ``compress`` but ``compress.util``, so it keeps its own base class; the CLI recognises
it by its ``exit_code`` and ``hint`` attributes and prints ``error: <message> (<hint>)``.
"""

from __future__ import annotations


class CalibrationError(ValueError):
    """An image folder, preprocessing option or label file that cannot be used as given."""

    exit_code = 4

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
