"""compress: label-free structured pruning, self-distillation and deployment export.

``compress.prune(...)``, ``compress.prune_model(...)`` (in memory), ``compress.sweep(...)``, ``compress.load(...)`` and ``compress.register_layer(...)``
(with ``compress.LayerHandler`` and ``compress.per_channel``) are the Python API (see ``compress.api``);
they are imported on first use so that ``import compress`` stays light.
"""

from compress.util.version import __version__

API = ("prune", "prune_model", "sweep", "load", "register_layer", "LayerHandler", "per_channel")


def __getattr__(name: str):
    if name in API:
        from compress import api

        return getattr(api, name)
    raise AttributeError(f"module 'compress' has no attribute {name!r}")
