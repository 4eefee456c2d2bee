"""TensorRT on a CUDA GPU: ``model.engine`` built from the ONNX (``export.tensorrt``, its engine builder and runner).

``--format trt`` builds the engine from ``model.onnx`` (FP16), or from the INT8 ONNX model when it was quantized
for this target (``--target tensorrt``, symmetric Q/DQ); a missing TensorRT or GPU skips it with the reason after
the other formats are written (not exit 5: a GPU format on a CPU machine is expected).
"""

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
    latency = True
    files = {"engine": "model.engine"}
    formats = ("trt",)
    bench_hint = "rows skipped without TensorRT and a GPU"
    env_labels = (("tensorrt", "TensorRT"),)

    def environment(self, backends):
        try:
            import tensorrt

            return {"tensorrt": str(tensorrt.__version__)}
        except Exception:
            return {"tensorrt": None}

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

    def row_logits(self, model, artifact, images):
        return None  # the engine is timed only

    def runner(self, artifact, module, example, threads, device):
        from compress.export.tensorrt import trt_runner

        return trt_runner(artifact, example)

    def from_onnx(self, onnx_path, example, threads):
        from compress.export.tensorrt import build_engine, trt_runner

        batch = len(example)
        engine = onnx_path.with_suffix(".engine")
        build_engine(onnx_path, engine, min_batch=batch, opt_batch=batch, max_batch=batch)
        return trt_runner(engine, example)  # the runner holds the deserialized engine

    def export(self, job):
        from compress.export.errors import TensorRTUnavailable
        from compress.export.tensorrt import build_engine

        source = job.int8_onnx if job.int8_onnx is not None and job.target == "tensorrt" else job.onnx_path
        engine = self.files["engine"]
        try:
            info = build_engine(source, job.folder / engine, fp16=source == job.onnx_path)
        except TensorRTUnavailable as err:
            job.say_warn(f"--export trt skipped: {err}")
            return {"trt": {"skipped": str(err)}}
        job.say_info(f"export: {engine} ({info.precision}, TensorRT {info.tensorrt_version})")
        return {"trt": {**info.to_dict(), "path": engine}}
