"""User-facing errors: one line, a hint, an exit code.

Every error a user can cause (bad file, bad option, model the tool cannot handle) is raised as a
subclass of :class:`CompressError`; the CLI prints ``error: <message> (<hint>)`` and exits with
the class's code. The base lives in ``compress.util.errors``, so that ``compress.calibrate`` and
``compress.export`` (which import only ``compress.util`` of the project) derive their errors from it too.
"""

from __future__ import annotations

from compress.util.errors import CompressError, OutputError
from compress.util.text import one_line

__all__ = ["ArchError", "CheckpointError", "CompressError", "GraphError", "PruneError", "OutputError", "PolicyError", "RecoveryError",
           "RecoveryInterrupted", "UsageError", "one_line"]  # one_line lives in compress.util (export uses it too)


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


class RecoveryInterrupted(CompressError):
    """Ctrl-C during recovery: the output was written with the best weights seen, but the run did not
    finish its schedule, so a script must be able to tell."""

    exit_code = 9


# Exit codes, as docs/troubleshooting.md documents them (tests check every one is raised somewhere).
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

