"""Runtime plugins: one module per runtime, the one place export, verification, ``bench`` and the
latency table learn how to run a model there.

Each module defines a :class:`~compress.export.runtimes.base.Runtime` subclass; :func:`get` returns
an instance by name. Optional runtimes (``tensorrt``, ``openvino``, ``executorch``; ``aoti`` and
``torch-compile`` need only torch and a C++ compiler) import their
package inside their methods, so importing this registry costs nothing; ``available()`` says why a
runtime cannot run here (which extra to install) and ``require()`` raises that as an
:class:`~compress.export.errors.RuntimeUnavailable`.
"""

from __future__ import annotations

import importlib

from compress.export.errors import ExportError

# name -> "module:Class" (imported lazily: a runtime's module may be heavy to import)
REGISTRY = {
    "torch": "compress.export.runtimes.torch_rt:TorchRuntime",
    "onnxruntime": "compress.export.runtimes.ort:OnnxRuntime",
    "tensorrt": "compress.export.runtimes.trt:TensorRTRuntime",
    "openvino": "compress.export.runtimes.openvino_rt:OpenVINORuntime",
    "executorch": "compress.export.runtimes.executorch_rt:ExecuTorchRuntime",
    "aoti": "compress.export.runtimes.aoti_rt:AOTIRuntime",
    "torch-compile": "compress.export.runtimes.compile_rt:TorchCompileRuntime",
}
NAMES = tuple(REGISTRY)
# runtimes a command asks for by name that may be missing here: asked for, they must be present (exit 5)
OPTIONAL = ("openvino", "executorch", "aoti", "torch-compile")
_cache: dict = {}


def get(name: str):
    """The runtime plugin called ``name``; :class:`ExportError` for an unknown name."""
    if name not in REGISTRY:
        raise ExportError(f"unknown runtime {name!r}", f"use one of {', '.join(NAMES)}")
    if name not in _cache:
        module, _, cls = REGISTRY[name].partition(":")
        _cache[name] = getattr(importlib.import_module(module), cls)()
    return _cache[name]
