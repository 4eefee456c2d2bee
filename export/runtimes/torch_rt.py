"""PyTorch eager: the model itself, FP32, on the CPU or ``device`` (CUDA)."""

from __future__ import annotations

from compress.export.runtimes.base import Runtime


class TorchRuntime(Runtime):
    name = "torch"
    title = "PyTorch"
    latency = True
    follows_device = True
    label_device = True
    env_labels = (("torch", "torch"),)

    def version(self) -> str:
        import torch

        return torch.__version__

    def environment(self, backends):
        return {"torch": self.version()}

    def variants(self, model):
        return [("fp32", None)], []

    def size_key(self, precision: str) -> str:
        return "checkpoint"

    def row_device(self, device: str) -> str:
        return str(device)

    def row_logits(self, model, artifact, images):
        from compress.export.verify import torch_logits

        return torch_logits(model.module, images)

    def runner(self, artifact, module, example, threads, device):
        return self.runner_for(module, example, threads, device)

    def runner_for(self, module, example, threads, device="cpu"):
        from compress.export.latency import torch_runner

        return torch_runner(module, example, device)
