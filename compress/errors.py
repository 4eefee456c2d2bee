"""User-facing errors: one line, a hint, an exit code.

Every error a user can cause (bad file, bad option, model the tool cannot handle) is raised as a
subclass of :class:`CompressError`; the CLI prints ``error: <message> (<hint>)`` and exits with
the class's code. ``calibrate`` and ``export`` keep their own base classes (they import nothing of
this package) but follow the same protocol: ``exit_code`` and ``hint`` attributes.
"""

from __future__ import annotations

import re


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


class PolicyError(UsageError, PruneError):
    """A pruning target or limit out of range: a usage error (exit 2), found before any work."""

    exit_code = 2


class RecoveryError(CompressError):
    """Recovery that cannot run at all (the distillation loss is not finite from its first step)."""

    exit_code = 7


class OutputError(CompressError):
    """The output cannot be written (disk full, no permission, read-only, a file in the way);
    nothing partial is left behind."""

    exit_code = 8


class RecoveryInterrupted(CompressError):
    """Ctrl-C during recovery: the output was written with the best weights seen, but the run did not
    finish its schedule, so a script must be able to tell."""

    exit_code = 9


# Exit codes, as the README documents them (tests check every one is raised somewhere).
EXIT_CODES = {
    0: "success",
    1: "an unexpected failure (a bug: please report the traceback)",
    2: "usage: an option or argument that cannot work as given",
    3: "checkpoint or --arch that cannot be read or does not match",
    4: "images (--calib, --eval, --labels) that cannot be used",
    5: "export (ONNX, INT8, TensorRT) failed or did not verify",
    6: "graph or pruning request that cannot be met soundly",
    7: "recovery cannot run (non-finite distillation loss from the first step)",
    8: "the output cannot be written (disk full, permission, read-only, a file in the way); nothing partial left",
    9: "interrupted (Ctrl-C) during recovery: the output was written with the best weights seen",
    130: "interrupted (Ctrl-C) before anything was written",
}


def one_line(err: BaseException, limit: int = 240) -> str:
    """An exception's text on one line (whitespace collapsed, colour codes dropped), cut at ``limit``."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", " ".join(str(err).split()))
    return text if len(text) <= limit else text[:limit - 3] + "..."
