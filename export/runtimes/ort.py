"""onnxruntime on the CPU: ``model.onnx`` (FP32, exported and verified against PyTorch) and ``model.int8.onnx``
(Q/DQ INT8, calibrated on the user's images, ``export.quantize``).

``model.onnx`` is written by every export: it is the file the other runtimes convert (OpenVINO IR, engines) and
the INT8 model is quantized from, so this plugin exports first (``REGISTRY`` order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compress.export.runtimes.base import Runtime

CALIBRATION_BATCH = 32  # images per calibration call


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    title = "onnxruntime"
    package = "onnxruntime"
    extra = None  # a core dependency
    takes_onnx = True
    latency = True
    files = {"onnx": "model.onnx", "int8": "model.int8.onnx"}
    formats = ("onnx", "int8")
    calibrated = ("int8",)
    env_labels = (("onnxruntime", "onnxruntime"),)

    def environment(self, backends):
        import numpy
        import onnx
        import onnxruntime

        return {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__, "numpy": numpy.__version__}

    def variants(self, model):
        rows = [("fp32", model.onnx_path)] if model.onnx_path is not None else []
        if model.int8_path is not None:
            rows.append(("int8", model.int8_path))
        return rows, ([] if model.onnx_path is not None else ["no ONNX file given"])

    def size_key(self, precision: str) -> str:
        return "int8" if precision == "int8" else "onnx"

    def wants_onnx(self, artifacts):
        return True  # its FP32 rows run the ONNX file itself

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

    # ---------------------------------------------------------------- export
    def exports(self, formats):
        return True  # model.onnx is the source of every other file

    def export(self, job):
        from compress.export.onnx import export_onnx
        from compress.export.verify import verify_onnx

        record = {}
        onnx_path = job.folder / self.files["onnx"]
        result = export_onnx(job.model, job.images[:1], onnx_path)
        check = verify_onnx(onnx_path, job.model, job.images)
        record["onnx"] = {"path": onnx_path.name, "exporter": result.exporter, "opset": result.opset,
                          "warnings": list(result.warnings), "size_bytes": onnx_path.stat().st_size,
                          "verification": check.to_dict()}
        job.say_info(f"export: {onnx_path.name} ({result.exporter}, opset {result.opset}) matches PyTorch: "
                     f"max |diff| {check.max_abs_diff:.1e}, top-1 agreement {check.top1_agreement:.1%} on {check.n} images")
        job.onnx_path = onnx_path
        if "int8" in job.formats:
            record["int8"] = self._int8(job)
        return record

    def _int8(self, job) -> dict:
        from compress.calibrate.readers import TensorCalibrationReader
        from compress.export import quantize
        from compress.export.verify import compare_sessions

        int8_path = job.folder / self.files["int8"]
        reader = TensorCalibrationReader(job.calibration, "input", batch_size=CALIBRATION_BATCH)
        q = quantize.quantize_int8(job.onnx_path, int8_path, reader, method=job.int8_method, target=job.target)
        agreement = compare_sessions(job.onnx_path, int8_path, job.images)
        record = {**q.to_dict(), "path": int8_path.name, "agreement_with_fp32": agreement.to_dict()}
        job.say_info(f"export: {int8_path.name} ({q.activation_type} activations, {q.method}, target {job.target}): "
                     f"top-1 agreement with FP32 {agreement.top1_agreement:.1%}, {q.size_bytes / 2**10:.0f} KiB")
        if job.target != "cpu" and quantize.saturating_u8s8():
            record["agreement_note"] = quantize.SATURATION_NOTE
            job.say_warn(f"export: {quantize.SATURATION_NOTE}")
        job.int8_onnx = int8_path
        return record
