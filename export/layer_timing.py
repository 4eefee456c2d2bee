"""Timing a layer alone or a whole network on one backend, for latency tables and their checks.

A *timer* answers these questions on its backend, at a fixed batch and thread count:
``time_layer(spec, cin, cout)`` (one layer at those widths), ``runner(model, example)`` and ``time_runner``
(a whole network), ``compare`` (two networks' runners timed interleaved) and ``describe()`` (what the figures depend
on: backend, its version, device, threads, CPU model — the cache key of a latency table).

The backends are the runtime plugins with ``latency = True`` (``export.runtimes``), timed one of two ways:

* :class:`OnnxTimer` for plugins that take ONNX (``Runtime.takes_onnx``): the layer as a one-node ONNX
  model (:func:`export.layer_models.onnx_layer`), the network exported with :func:`export.onnx.export_onnx`,
  each run by the plugin's ``from_onnx`` (the ONNX CPU runtime's sessions as ``compress bench`` runs them,
  IR compiled on the CPU, engines built on a GPU).
* :class:`ModuleTimer` for the others: the layer as an ``nn`` module and the network itself, each run by
  the plugin's ``runner_for`` (eager on the CPU or CUDA, or lowered/compiled first, which takes seconds per
  entry). A plugin with ``layers_eager`` times layers alone in eager torch and compiles only the networks:
  a proxy the fit to compiled networks corrects (``LatencyModel.fit``: ms = a·sum + b over measured
  networks), and the held-out prediction error says how good it is.
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
from compress.export.runtimes import get, latency_backends

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
    """A runtime plugin that takes ONNX (``export.runtimes``)."""

    def __init__(self, runtime, batch: int = 1, threads: int | None = None, device: str = "cpu"):
        super().__init__(batch, threads, device)
        self.plugin = runtime
        self.backend = runtime.name

    def describe(self) -> dict:
        return {**super().describe(), **self.plugin.timer_describe()}

    def from_onnx(self, path: Path, example: torch.Tensor) -> Runner:
        return self.plugin.from_onnx(path, example, self.threads)


class ModuleTimer(Timer):
    """A runtime plugin that runs ``nn`` modules: each layer and each network through ``runner_for``."""

    def __init__(self, runtime, batch: int = 1, threads: int | None = None, device: str = "cpu"):
        super().__init__(batch, threads, device)
        self.plugin = runtime
        self.backend = runtime.name

    def describe(self) -> dict:
        return {**super().describe(), **self.plugin.timer_describe()}

    def layer_runner(self, spec: LayerSpec, cin: int, cout: int) -> Runner:
        layer, example = torch_layer(spec, cin, cout), example_input(spec, cin, self.batch)
        if self.plugin.layers_eager:
            return torch_runner(layer, example, self.device)
        return self.plugin.runner_for(layer, example, self.threads, self.device)

    def runner(self, model: nn.Module, example: torch.Tensor) -> Runner:
        return self.plugin.runner_for(model, example, self.threads, self.device)


def make_timer(backend: str, *, batch: int = 1, threads: int | None = None, device: str = "cpu") -> Timer:
    """The timer of latency backend ``backend`` (one line naming the extra or the missing GPU when it cannot run)."""
    if backend not in latency_backends():
        raise ValueError(f"unknown latency backend {backend!r}; expected one of {latency_backends()}")
    runtime = get(backend)
    runtime.require()
    device = device if runtime.follows_device else runtime.device
    return (PluginTimer if runtime.takes_onnx else ModuleTimer)(runtime, batch, threads, device)
