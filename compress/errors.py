"""User-facing errors: one line, a hint, an exit code.

Every error a user can cause (bad file, bad option, model the tool cannot handle) is raised as a
subclass of :class:`CompressError`; the CLI prints ``error: <message> (<hint>)`` and exits with
the class's code. ``calibrate`` and ``export`` keep their own base classes (they import only
``compress.util`` of the project) but follow the same protocol: ``exit_code`` and ``hint`` attributes.
"""

from __future__ import annotations

from compress.util.text import one_line

__all__ = ["ArchError", "CheckpointError", "CompressError", "GraphError", "PruneError", "RecoveryError", "UsageError",
           "one_line"]  # one_line lives in compress.util (export uses it too)


class CompressError(Exception):
    """Base of all expected failures. ``str(err)`` is the one-line message."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(CompressError):
    """An option or argument that cannot work as given."""

    exit_code = 2


class CheckpointError(CompressError):
    """A checkpoint that cannot be read, or does not match its architecture."""

    exit_code = 3


class ArchError(CompressError):
    """An ``--arch`` spec that cannot be resolved to a model factory."""

    exit_code = 3


class GraphError(CompressError):
    """A model the channel-dependency graph cannot be built for."""

    exit_code = 6


class PruneError(CompressError):
    """A pruning request that cannot be met soundly."""

    exit_code = 6


class RecoveryError(CompressError):
    """Distillation that had to stop (non-finite loss and the like)."""

    exit_code = 7
