"""compress: label-free structured pruning, self-distillation and deployment export.

``compress.prune(...)``, ``compress.sweep(...)`` and ``compress.load(...)`` are the Python API (see ``compress.api``);
they are imported on first use so that ``import compress`` stays light.
"""

from compress.util.version import __version__


def __getattr__(name: str):
    if name in ("prune", "sweep", "load"):
        from compress import api

        return getattr(api, name)
    raise AttributeError(f"module 'compress' has no attribute {name!r}")
