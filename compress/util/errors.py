"""The error protocol every layer shares: a one-line message, a hint and an exit code.

:class:`CompressError` lives at the bottom so that the lowest utilities (the atomic writer) can raise
a user-facing error; ``compress.errors`` holds its subclasses for the core, ``compress.calibrate`` and
``compress.export`` their own classes with the same ``exit_code`` / ``hint`` attributes.
"""

from __future__ import annotations


class CompressError(Exception):
    """Base of all expected failures. ``str(err)`` is the one-line message."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class OutputError(CompressError):
    """The output cannot be written (disk full, no permission, read-only, a file in the way);
    nothing partial is left behind."""

    exit_code = 8
