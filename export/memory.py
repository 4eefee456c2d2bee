"""Peak memory of one model on one backend, measured in a fresh process.

A fresh interpreter per measurement (``python -m export.memory_probe``) so that nothing the parent
allocated (other models, earlier runs, allocator caches) inflates the figure. The child reports:

* ``peak_rss_bytes``: peak resident memory of the whole process (runtime + model + activations);
* ``baseline_rss_bytes``: peak after importing the runtime, before loading the model;
* ``model_rss_bytes = peak - baseline``: what this model and its inference added (weights,
  activations, and the runtime's lazy first-inference set-up: kernel scratch, thread pools);
* ``gpu_peak_bytes``: ``torch.cuda.max_memory_allocated()`` for the torch backend on CUDA.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from compress.export.errors import ExportError
from compress.export.runtimes import memory_backends


@dataclass
class MemoryResult:
    backend: str
    batch: int
    peak_rss_bytes: int
    baseline_rss_bytes: int
    model_rss_bytes: int
    gpu_peak_bytes: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def importable_name(loader: str | Callable[..., Any]) -> str:
    """``"module:function"`` of a module-level function, which a fresh process can import (a string
    is taken as that name already)."""
    if isinstance(loader, str):
        return loader
    name = getattr(loader, "__qualname__", "")
    if not name or "." in name or "<" in name:
        raise ExportError(f"the memory probe's loader {loader!r} is not a module-level function",
                          "a child process must import it: pass a function defined at a module's top level")
    return f"{loader.__module__}:{name}"


def peak_rss_subprocess(backend: str, *, onnx_path: str | Path | None = None,
                        loader: str | Callable[..., Any] | None = None,
                        loader_args: Sequence = (), batch: int, input_shape: Sequence[int], iters: int = 3,
                        threads: int | None = 1, device: str = "cpu", timeout: float = 600.0) -> MemoryResult:
    """Run ``iters`` batches of ``batch`` random inputs of ``input_shape`` (C, H, W) in a child process.

    ``backend="onnxruntime"`` (and the other file runtimes, ``compress.export.runtimes``) needs
    ``onnx_path``, the file it runs from; ``backend="torch"`` needs ``loader``, a module-level function
    (or its ``"module:function"`` name) the child imports and calls with ``loader_args``
    (JSON-serialisable, e.g. a checkpoint path); it returns an ``nn.Module`` or an object with a ``.model``.
    """
    if backend not in memory_backends():  # runtimes whose files (or module) the probe loads
        raise ExportError(f"unknown memory backend {backend!r}", f"use one of {', '.join(memory_backends())}")
    if backend != "torch" and not onnx_path:
        raise ExportError(f"the {backend} memory probe needs the model's file", "export the model first")
    if backend == "torch" and not loader:
        raise ExportError("the torch memory probe needs a loader 'module:function'",
                          "e.g. loader=compress.models.loading.load_for_bench, loader_args=[checkpoint]")
    loader = importable_name(loader) if loader is not None else None
    spec = {"backend": backend, "onnx_path": str(onnx_path) if onnx_path else None, "loader": loader,
            "loader_args": [str(a) if isinstance(a, os.PathLike) else a for a in loader_args], "batch": int(batch),
            "input_shape": [int(d) for d in input_shape], "iters": int(iters), "threads": threads, "device": device}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see export.latency: spinning OpenMP on shared cores
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    try:
        proc = subprocess.run([sys.executable, "-m", "compress.export.memory_probe", json.dumps(spec)], capture_output=True,
                              text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as err:
        raise ExportError(f"memory probe for {backend} timed out after {timeout:.0f} s") from err
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ExportError(f"memory probe ({backend}, batch {batch}) failed: {tail[:300]}",
                          "run the model once outside the benchmark to see the full error")
    line = proc.stdout.strip().splitlines()[-1]
    data = json.loads(line)
    peak, base = int(data["peak_rss_bytes"]), int(data["baseline_rss_bytes"])
    return MemoryResult(backend=backend, batch=int(batch), peak_rss_bytes=peak, baseline_rss_bytes=base,
                        model_rss_bytes=max(0, peak - base), gpu_peak_bytes=data.get("gpu_peak_bytes"))
