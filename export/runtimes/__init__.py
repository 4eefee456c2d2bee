"""Runtime plugins: one module per runtime, the one place export, verification, ``bench``, the memory
probe, the latency table, the report and the CLI learn how to run a model there.

Each module defines a :class:`~compress.export.runtimes.base.Runtime` subclass; :func:`get` returns
an instance by name. Every list of formats, files and backends is derived here from the plugins'
attributes (:func:`formats`, :func:`files`, :func:`latency_backends`, :func:`memory_backends`,
:func:`optional`), so a new runtime is its module and one line in ``REGISTRY``. Optional runtimes import
their package inside their methods and plugin modules import nothing heavy, so reading these lists
costs no torch import (``compress --help``); ``available()`` says why a runtime cannot run here (which
extra to install) and ``require()`` raises that as an :class:`~compress.export.errors.RuntimeUnavailable`.
"""

from __future__ import annotations

import importlib

from compress.export.errors import ExportError

# name -> "module:Class" (imported lazily), in the order formats are exported and listed
REGISTRY = {
    "torch": "compress.export.runtimes.torch_rt:TorchRuntime",
    "onnxruntime": "compress.export.runtimes.ort:OnnxRuntime",
    "tensorrt": "compress.export.runtimes.trt:TensorRTRuntime",
    "openvino": "compress.export.runtimes.openvino_rt:OpenVINORuntime",
    "executorch": "compress.export.runtimes.executorch_rt:ExecuTorchRuntime",
    "aoti": "compress.export.runtimes.aoti_rt:AOTIRuntime",
    "torch-compile": "compress.export.runtimes.compile_rt:TorchCompileRuntime",
    "ort-format": "compress.export.runtimes.ort_format:OrtFormatRuntime",
}
NAMES = tuple(REGISTRY)
_cache: dict = {}


def get(name: str):
    """The runtime plugin called ``name``; :class:`ExportError` for an unknown name."""
    if name not in REGISTRY:
        raise ExportError(f"unknown runtime {name!r}", f"use one of {', '.join(NAMES)}")
    if name not in _cache:
        module, _, cls = REGISTRY[name].partition(":")
        _cache[name] = getattr(importlib.import_module(module), cls)()
    return _cache[name]


def forget(name: str) -> None:
    """Drop the plugin instance :func:`get` keeps for ``name`` (a registry entry replaced at run time, a test's fake)."""
    _cache.pop(name, None)


def runtimes() -> list:
    """Every plugin, in registry order."""
    return [get(name) for name in NAMES]


def formats() -> tuple[str, ...]:
    """What ``--export`` / ``--format`` accept, in export order."""
    return tuple(f for runtime in runtimes() for f in runtime.formats)


def format_owner(fmt: str):
    """The plugin that writes ``fmt``."""
    return next(runtime for runtime in runtimes() if fmt in runtime.formats)


def calibrated_formats() -> tuple[str, ...]:
    """Formats that need calibration images (INT8)."""
    return tuple(f for runtime in runtimes() for f in runtime.calibrated)


def files() -> dict[str, str]:
    """Artifact key -> file name of every file an export writes into an output folder."""
    return {key: name for runtime in runtimes() for key, name in runtime.files.items()}


def file_owner(key: str):
    """The plugin whose files include artifact key ``key`` (None for a key no plugin writes)."""
    return next((runtime for runtime in runtimes() if key in runtime.files), None)


def latency_backends() -> tuple[str, ...]:
    """Runtimes a latency table can be measured on (``compress prune --backend``)."""
    return tuple(runtime.name for runtime in runtimes() if runtime.latency)


def memory_backends() -> tuple[str, ...]:
    """Runtimes whose files (or module) the memory probe loads in a fresh process."""
    return tuple(runtime.name for runtime in runtimes() if runtime.memory)


def optional() -> tuple[str, ...]:
    """Runtimes a command asks for by name that may be missing here: asked for, they must be present (exit 5)."""
    return tuple(runtime.name for runtime in runtimes() if runtime.optional)


def safe_get(name: str):
    """The plugin called ``name``, or None (a report written with a runtime this version does not know)."""
    return get(name) if name in REGISTRY else None
