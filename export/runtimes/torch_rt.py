"""PyTorch eager: the model itself, FP32, on the CPU or ``device`` (CUDA)."""

from __future__ import annotations

import torch

from compress.export.runtimes.base import Runtime


class TorchRuntime(Runtime):
    name = "torch"
    title = "PyTorch"

    def version(self) -> str:
        return torch.__version__

    def variants(self, model):
        return [("fp32", None)], []

    def size_key(self, precision: str) -> str:
        return "checkpoint"

    def row_device(self, device: str) -> str:
        return str(device)

    def runner(self, artifact, module, example, threads, device):
        from compress.export.latency import torch_runner

        return torch_runner(module, example, device)
