"""TensorRT on a CUDA GPU: ``model.engine`` built from the ONNX (``export.tensorrt``)."""

from __future__ import annotations

from compress.export.runtimes.base import Runtime


class TensorRTRuntime(Runtime):
    name = "tensorrt"
    title = "TensorRT"
    package = "tensorrt"
    extra = "tensorrt"
    device = "cuda"
    memory = False
    memory_note = "memory is not measured for TensorRT engines"
    takes_onnx = True

    def available(self):
        from compress.export.tensorrt import tensorrt_available

        return tensorrt_available()

    def require(self):
        from compress.export.tensorrt import require_tensorrt

        return require_tensorrt()

    def variants(self, model):
        if model.engine_path is None:
            return [], ["no engine given"]
        return [(model.engine_precision, model.engine_path)], []

    def size_key(self, precision: str) -> str:
        return "engine"

    def runner(self, artifact, module, example, threads, device):
        from compress.export.latency import trt_runner

        return trt_runner(artifact, example)

    def from_onnx(self, onnx_path, example, threads):
        from compress.export.latency import trt_runner
        from compress.export.tensorrt import build_engine

        batch = len(example)
        engine = onnx_path.with_suffix(".engine")
        build_engine(onnx_path, engine, min_batch=batch, opt_batch=batch, max_batch=batch)
        return trt_runner(engine, example)  # the runner holds the deserialized engine
