"""Timing a layer alone or a whole network on one backend, for latency tables and their checks.

A *timer* answers these questions on its backend, at a fixed batch and thread count:
``time_layer(spec, cin, cout)`` (one layer at those widths), ``runner(model, example)`` and ``time_runner``
(a whole network), ``compare`` (two networks' runners timed interleaved) and ``describe()`` (what the figures depend
on: backend, its version, device, threads, CPU model — the cache key of a latency table).

* ``onnxruntime``: the layer as a one-node ONNX model (:func:`export.layer_models.onnx_layer`),
  the network exported with :func:`export.onnx.export_onnx`; sessions from
  :func:`export.verify.make_session` (all graph optimisations, fixed intra-op threads), as
  ``compress bench`` runs them.
* ``torch``: the layer as an ``nn`` module, the network itself, on CPU or CUDA.
* ``tensorrt``: engines built from the same ONNX models (needs TensorRT and a GPU).
* ``openvino``: the same ONNX models compiled by OpenVINO on the CPU (``export.runtimes.openvino_rt``).
* ``executorch``: the layer as an ``nn`` module, the network itself, each lowered to an XNNPACK
  ``.pte`` (``export.runtimes.executorch_rt``; lowering takes seconds per entry).
* ``aoti``: networks compiled to AOTInductor packages on the CPU or CUDA (``export.runtimes.aoti_rt``;
  seconds per network); layers alone in eager torch, a proxy the fit to compiled networks corrects
  (:class:`AOTITimer`).
"""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path

import torch
import torch.nn as nn

from compress.export.layer_models import LayerSpec, example_input, onnx_layer, torch_layer
from compress.export.cpu_load import cpu_model
from compress.export.latency import Runner, time_interleaved, torch_runner
from compress.export.onnx import export_onnx

BACKENDS = ("onnxruntime", "torch", "tensorrt", "openvino", "executorch", "aoti")
LAYER_SECONDS = 0.15  # per table entry: enough rounds for a stable median of a µs-scale layer
MODEL_SECONDS = 1.0  # per whole-network measurement


class Timer:
    backend = ""

    def __init__(self, batch: int = 1, threads: int | None = None, device: str = "cpu"):
        self.batch = int(batch)
        self.threads = int(threads or os.cpu_count() or 1)
        self.device = device

    def describe(self) -> dict:
        info = {"backend": self.backend, "batch": self.batch, "threads": self.threads, "device": self.device,
                "cpu": cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(),
                "system": platform.system(), "torch": torch.__version__}
        if self.device.startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(torch.device(self.device))
        return info

    def layer_runner(self, spec: LayerSpec, cin: int, cout: int) -> Runner:
        raise NotImplementedError

    def runner(self, model: nn.Module, example: torch.Tensor) -> Runner:
        raise NotImplementedError

    def example(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn((self.batch, *shape), generator=torch.Generator().manual_seed(0))

    def time_layer(self, spec: LayerSpec, cin: int, cout: int) -> float:
        """Median milliseconds of one call of ``spec`` at these widths."""
        run = self.layer_runner(spec, cin, cout)
        stats = time_interleaved({"layer": run}, warmup=5, iters=15, min_seconds=LAYER_SECONDS,
                                 batch=self.batch, threads=self.threads)
        return stats["layer"].p50

    def time_runner(self, run: Runner, seconds: float = MODEL_SECONDS) -> float:
        stats = time_interleaved({"model": run}, warmup=5, iters=10, min_seconds=seconds, batch=self.batch,
                                 threads=self.threads)
        return stats["model"].p50

    def time_model(self, model: nn.Module, example: torch.Tensor, seconds: float = MODEL_SECONDS) -> float:
        return self.time_runner(self.runner(model, example), seconds)

    def compare(self, first: Runner, second: Runner, seconds: float = 2.0) -> tuple[float, float]:
        """Median ms of two networks' runners timed interleaved (the figures a report shows)."""
        stats = time_interleaved({"first": first, "second": second}, warmup=5, iters=20, min_seconds=seconds,
                                 batch=self.batch, threads=self.threads)
        return stats["first"].p50, stats["second"].p50


class OnnxTimer(Timer):
    """A backend that runs ONNX: layers and networks go through a temporary ONNX file."""

    def from_onnx(self, path: Path, example: torch.Tensor) -> Runner:
        """A runner for the ONNX model at ``path`` (which is deleted once this returns)."""
        raise NotImplementedError

    def layer_runner(self, spec: LayerSpec, cin: int, cout: int) -> Runner:
        with tempfile.TemporaryDirectory(prefix="compress-layer-") as tmp:
            path = Path(tmp) / "layer.onnx"
            path.write_bytes(onnx_layer(spec, cin, cout).SerializeToString())
            return self.from_onnx(path, example_input(spec, cin, self.batch))

    def runner(self, model: nn.Module, example: torch.Tensor) -> Runner:
        with tempfile.TemporaryDirectory(prefix="compress-net-") as tmp:
            path = Path(tmp) / "model.onnx"
            export_onnx(model, example[:1], path)
            return self.from_onnx(path, example)


class PluginTimer(OnnxTimer):
    """A runtime plugin that takes ONNX (``export.runtimes``): onnxruntime, OpenVINO, TensorRT."""

    def __init__(self, runtime, batch: int = 1, threads: int | None = None, device: str = "cpu"):
        super().__init__(batch, threads, device)
        self.plugin = runtime
        self.backend = runtime.name

    def describe(self) -> dict:
        return {**super().describe(), **self.plugin.describe()}

    def from_onnx(self, path: Path, example: torch.Tensor) -> Runner:
        return self.plugin.from_onnx(path, example, self.threads)


class OrtTimer(PluginTimer):
    def __init__(self, batch: int = 1, threads: int | None = None, device: str = "cpu"):
        from compress.export.runtimes import get

        super().__init__(get("onnxruntime"), batch, threads, "cpu")


class TorchTimer(Timer):
    backend = "torch"

    def layer_runner(self, spec: LayerSpec, cin: int, cout: int) -> Runner:
        return torch_runner(torch_layer(spec, cin, cout), example_input(spec, cin, self.batch), self.device)

    def runner(self, model: nn.Module, example: torch.Tensor) -> Runner:
        return torch_runner(model, example, self.device)


class ExecuTorchTimer(Timer):
    """ExecuTorch/XNNPACK: each layer (an ``nn`` module) and each network lowered to a ``.pte``."""

    backend = "executorch"

    def __init__(self, batch: int = 1, threads: int | None = None, device: str = "cpu"):
        from compress.export.runtimes import get

        super().__init__(batch, threads, "cpu")
        self.plugin = get("executorch")
        self.plugin.require()

    def describe(self) -> dict:
        return {**super().describe(), **self.plugin.describe()}

    def layer_runner(self, spec: LayerSpec, cin: int, cout: int) -> Runner:
        return self.plugin.runner_for(torch_layer(spec, cin, cout), example_input(spec, cin, self.batch), self.threads)

    def runner(self, model: nn.Module, example: torch.Tensor) -> Runner:
        return self.plugin.runner_for(model, example, self.threads)


class AOTITimer(Timer):
    """AOTInductor: each network compiled to a ``.pt2`` package on the CPU or ``device`` and timed as such
    (``export.runtimes.aoti_rt``; compiling takes seconds per network). A layer alone is timed in eager torch
    on the same device: an AOTInductor package runs a lone convolution or linear layer as the same extern
    kernel eager torch calls, and one compile per table entry (tens of entries) would take many minutes. The
    table's sum is a proxy fitted to the compiled networks (``LatencyModel.fit``: ms = a·sum + b over measured
    packages), and the held-out prediction error says how good it is."""

    backend = "aoti"

    def __init__(self, batch: int = 1, threads: int | None = None, device: str = "cpu"):
        from compress.export.runtimes import get

        super().__init__(batch, threads, device)
        self.plugin = get("aoti")
        self.plugin.require()

    def describe(self) -> dict:
        return {**super().describe(), **self.plugin.describe(), "aoti_layers": "torch eager"}

    def layer_runner(self, spec: LayerSpec, cin: int, cout: int) -> Runner:
        return torch_runner(torch_layer(spec, cin, cout), example_input(spec, cin, self.batch), self.device)

    def runner(self, model: nn.Module, example: torch.Tensor) -> Runner:
        return self.plugin.runner_for(model, example, self.threads, self.device)


def make_timer(backend: str, *, batch: int = 1, threads: int | None = None, device: str = "cpu") -> Timer:
    if backend == "onnxruntime":
        return OrtTimer(batch, threads, "cpu")
    if backend == "torch":
        return TorchTimer(batch, threads, device)
    if backend == "executorch":
        return ExecuTorchTimer(batch, threads)
    if backend == "aoti":
        return AOTITimer(batch, threads, device)
    if backend not in BACKENDS:
        raise ValueError(f"unknown latency backend {backend!r}; expected one of {BACKENDS}")
    from compress.export.runtimes import get

    runtime = get(backend)
    runtime.require()  # one line naming the extra (or the missing GPU) to install
    return PluginTimer(runtime, batch, threads, runtime.device)
