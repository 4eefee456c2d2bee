"""ExecuTorch with the XNNPACK backend (``pip install 'compress[executorch]'``): ``.pte`` programs.

* FP32: ``model.pte``: ``torch.export`` of the model with a dynamic batch of 1..``MAX_BATCH``,
  ``to_edge_transform_and_lower`` with the ``XnnpackPartitioner``, ``to_executorch``.
* INT8: ``model.int8.pte``: PT2E static quantization with the ``XNNPACKQuantizer`` (symmetric
  int8, per-channel weights), calibrated on the same images as the ONNX INT8 model, then lowered
  the same way.
* A ``.pte`` plans its memory for the largest batch it accepts (``MAX_BATCH``), so its memory
  figures are those of that batch; larger batches are refused by the runtime.
* Threads: XNNPACK's thread pool is process-wide (``_unsafe_reset_threadpool``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from compress.export.errors import ExportError
from compress.export.runtimes.base import Runtime

FP32_NAME, INT8_NAME = "model.pte", "model.int8.pte"
MAX_BATCH = 32
CALIBRATION_BATCH = 32


class ExecuTorchRuntime(Runtime):
    name = "executorch"
    title = "ExecuTorch"
    package = "executorch"
    extra = "executorch"
    formats = ("executorch", "executorch-int8")
    calibrated = ("executorch-int8",)
    files = {"executorch": FP32_NAME, "executorch.int8": INT8_NAME}
    optional = True
    latency = True
    hint = "extra: executorch"
    bench_hint = "extra: compress[executorch]"
    env_labels = (("executorch", "ExecuTorch"),)

    def version(self) -> str | None:
        try:
            from executorch.version import __version__

            return str(__version__)
        except Exception:
            return None

    def describe(self) -> dict[str, Any]:
        return {"executorch": self.version(), "executorch_backend": "xnnpack"}

    # ---------------------------------------------------------------- running
    def import_runtime(self) -> None:
        self.require()
        from executorch.runtime import Runtime as ETRuntime

        ETRuntime.get()

    def method(self, artifact: Path, threads: int | None):
        self.require()
        from executorch.runtime import Runtime as ETRuntime

        set_threads(threads)
        program = ETRuntime.get().load_program(Path(artifact))
        return program.load_method("forward")

    def load(self, artifact, threads, batch=None):
        import torch

        method = self.method(artifact, threads)
        return lambda x: _first(method, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    def runner(self, artifact, module, example, threads, device):
        method = self.method(artifact, threads)
        x = example.detach().cpu().float().contiguous()
        return lambda: _first(method, x)

    def from_onnx(self, onnx_path, example, threads):
        raise ExportError("ExecuTorch runs .pte programs, not ONNX", "time it on whole networks (runner_for)")

    def bench_files(self, module, onnx, folder, name, input_shape, max_batch, device, artifacts):
        from compress.util.atomic import atomic_file

        if self.name in artifacts or not self.available()[0]:
            return {}
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.pte"
        with atomic_file(path, "wb") as handle:
            handle.write(lower(module.cpu().eval(), tuple(input_shape), max_batch=max(MAX_BATCH, max_batch)))
        return {self.name: path}

    def runner_for(self, module, example, threads, device="cpu"):
        """A runner for an ``nn.Module`` lowered to XNNPACK at ``example``'s batch (latency tables)."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="compress-pte-") as tmp:
            path = Path(tmp) / "net.pte"
            path.write_bytes(lower(module, example.shape[1:], max_batch=max(2, len(example))))
            return self.runner(path, module, example, threads, "cpu")

    # ---------------------------------------------------------------- export
    def export(self, job):
        from compress.util.atomic import atomic_file

        model, folder, formats, images, say_info = job.model, job.folder, job.formats, job.images, job.say_info
        self.require()
        shape = tuple(images.shape[1:])
        record: dict[str, Any] = {}
        path = folder / FP32_NAME
        with atomic_file(path, "wb") as handle:
            handle.write(lower(model, shape))
        check = self.verify(path, model, images)
        record["executorch"] = {"path": path.name, "executorch": self.version(), "backend": "xnnpack",
                                "max_batch": MAX_BATCH, "size_bytes": path.stat().st_size,
                                "verification": check.to_dict()}
        say_info(f"export: {path.name} (ExecuTorch {self.version()}, XNNPACK FP32) matches PyTorch: max |diff| "
                 f"{check.max_abs_diff:.1e}, top-1 agreement {check.top1_agreement:.1%} on {check.n} images")
        if "executorch-int8" in formats:
            path8 = folder / INT8_NAME
            with atomic_file(path8, "wb") as handle:
                handle.write(lower(quantize(model, job.calibration), shape))
            figures = self.int8_figures(path8, path, model, images)
            record["executorch-int8"] = {"path": path8.name, "quantizer": "XNNPACKQuantizer (PT2E, per-channel)",
                                         "max_batch": MAX_BATCH, "size_bytes": path8.stat().st_size, **figures}
            say_info(f"export: {path8.name} (XNNPACK INT8, PT2E): top-1 agreement with FP32 "
                     f"{figures['agreement_with_fp32']['top1_agreement']:.1%}, {path8.stat().st_size / 2**10:.0f} KiB")
        return record


def set_threads(threads: int | None) -> None:
    if not threads:
        return
    from executorch.extension.pybindings import portable_lib

    if portable_lib._threadpool_get_thread_count() != int(threads):
        portable_lib._unsafe_reset_threadpool(int(threads))


def _first(method, x):
    return method.execute([x])[0]


def _exported(model, shape, max_batch: int):
    import torch
    from torch.export import Dim

    # an example at the upper bound: with a batch-2 example the lowered program held at most 15 (measured)
    example = torch.randn((max(2, max_batch), *shape), generator=torch.Generator().manual_seed(0))
    dynamic = ({0: Dim("batch", min=1, max=max_batch)},)
    if not isinstance(model, torch.fx.GraphModule):  # a PT2E graph refuses .eval(); it is already in eval form
        model = model.eval()
    return torch.export.export(model, (example,), dynamic_shapes=dynamic)


def lower(model, shape, max_batch: int = MAX_BATCH) -> bytes:
    """The ``.pte`` bytes of ``model`` (an ``nn.Module`` or a PT2E-quantized graph) lowered to XNNPACK."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    try:
        program = _exported(model, tuple(shape), max_batch)
        return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0][:300]
        raise ExportError(f"cannot lower {type(model).__name__} to ExecuTorch/XNNPACK: {type(err).__name__}: {first}",
                          "simplify the forward (torch.export must capture it) or skip --format executorch") from err


def quantize(model, images):
    """PT2E static INT8 (XNNPACK quantizer, per-channel symmetric weights) calibrated on ``images``."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph = _exported(model, tuple(images.shape[1:]), MAX_BATCH).module()
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for i in range(0, len(images), CALIBRATION_BATCH):
            prepared(images[i:i + CALIBRATION_BATCH].float())
    return convert_pt2e(prepared)
