"""onnxruntime on the CPU: ``model.onnx`` (FP32) and ``model.int8.onnx`` (Q/DQ INT8)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compress.export.runtimes.base import Runtime


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    title = "onnxruntime"
    package = "onnxruntime"
    extra = None  # a core dependency
    takes_onnx = True

    def variants(self, model):
        rows = [("fp32", model.onnx_path)] if model.onnx_path is not None else []
        if model.int8_path is not None:
            rows.append(("int8", model.int8_path))
        return rows, ([] if model.onnx_path is not None else ["no ONNX file given"])

    def size_key(self, precision: str) -> str:
        return "int8" if precision == "int8" else "onnx"

    def runner(self, artifact, module, example, threads, device):
        from compress.export.latency import ort_runner

        return ort_runner(artifact, example, threads)

    def load(self, artifact: Path, threads, batch=None):
        from compress.export.verify import make_session

        session = make_session(artifact, threads=threads or 1)
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def from_onnx(self, onnx_path, example, threads):
        from compress.export.latency import ort_runner

        return ort_runner(onnx_path, example, threads=threads)  # the session holds the model
