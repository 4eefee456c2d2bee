"""onnxruntime's ORT format (``.ort``): the files onnxruntime Mobile and minimal builds load, which cannot read
``.onnx``. Made from the verified ONNX files by onnxruntime itself, as its ``convert_onnx_models_to_ort`` tool
does (a session that saves its optimized graph with ``session.save_model_format=ORT``).

* FP32: ``model.ort`` from ``model.onnx``; INT8: ``model.int8.ort`` from the Q/DQ ``model.int8.onnx`` (one
  calibration, the same scales as the INT8 ONNX model).
* Optimized at the *extended* level, not *all*: *all* adds the x86 NCHWc layout, which would tie the file to
  this machine's kind of CPU; an ``.ort`` file is meant to be copied to a phone.
* Verified like every format: the ``.ort`` file is run (onnxruntime's full build loads it) against PyTorch;
  the INT8 file reports its agreement with FP32. Rows, memory and size come from the same files.

The worked example of a runtime plugin: this module and ``tests/export/test_ort_format.py``, plus its line in
``REGISTRY``; nothing else names it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from compress.export.errors import ExportError
from compress.export.runtimes.base import Runtime
from compress.util.atomic import space_failure, write_failure

FP32_NAME, INT8_NAME = "model.ort", "model.int8.ort"


class OrtFormatRuntime(Runtime):
    name = "ort-format"
    title = "onnxruntime (ORT format)"
    package = "onnxruntime"
    extra = None  # a core dependency
    files = {"ort-format": FP32_NAME, "ort-format.int8": INT8_NAME}
    formats = ("ort-format", "ort-format-int8")
    calibrated = ("ort-format-int8",)
    implies = {"ort-format-int8": ("int8",)}  # made from the calibrated Q/DQ ONNX model
    hint = "onnxruntime Mobile .ort files"
    bench_hint = ".ort files, made from the ONNX when missing"

    def load(self, artifact, threads, batch=None):
        from compress.export.verify import make_session

        session = make_session(artifact, threads=threads or 1)
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def runner(self, artifact, module, example, threads, device):
        from compress.export.latency import ort_runner

        return ort_runner(artifact, example, threads)

    def convert(self, onnx_path: Path, ort_path: Path) -> Path:
        """``onnx_path`` -> ORT format ``ort_path``, written atomically."""
        ort = self.require()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.add_session_config_entry("session.save_model_format", "ORT")
        with tempfile.TemporaryDirectory(prefix=".compress-ort-", dir=ort_path.parent) as tmp:
            options.optimized_model_filepath = str(Path(tmp) / ort_path.name)
            try:
                ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
            except Exception as err:
                # a full disk: onnxruntime says only "Failed to save", naming its temporary file
                failure = write_failure(err, ort_path) or space_failure(ort_path.parent, ort_path,
                                                                        onnx_path.stat().st_size + (1 << 20))
                if failure is not None:
                    raise failure from None
                first = (str(err).strip().splitlines() or [""])[0][:300].replace(tmp, str(ort_path.parent))
                raise ExportError(f"onnxruntime cannot save {onnx_path.name} in ORT format: {first}") from err
            os.replace(options.optimized_model_filepath, ort_path)
        return ort_path

    def wants_onnx(self, artifacts):
        return self.name not in artifacts

    def bench_files(self, module, onnx, folder, name, input_shape, max_batch, device, artifacts):
        if not self.wants_onnx(artifacts):
            return {}
        folder.mkdir(exist_ok=True)
        return {self.name: self.convert(onnx, folder / f"{name}.ort")}

    def export(self, job):
        record = {}
        path = self.convert(job.onnx_path, job.folder / FP32_NAME)
        check = self.verify(path, job.model, job.images)
        record["ort-format"] = {"path": path.name, "source": job.onnx_path.name, "onnxruntime": self.version(),
                         "optimization": "extended", "size_bytes": path.stat().st_size,
                         "verification": check.to_dict()}
        job.say_info(f"export: {path.name} (ORT format, onnxruntime {self.version()}) matches PyTorch: max |diff| "
                     f"{check.max_abs_diff:.1e}, top-1 agreement {check.top1_agreement:.1%} on {check.n} images")
        if "ort-format-int8" in job.formats:
            path8 = self.convert(job.int8_onnx, job.folder / INT8_NAME)
            figures = self.int8_figures(path8, path, job.model, job.images)
            record["ort-format-int8"] = {"path": path8.name, "source": job.int8_onnx.name,
                                  "size_bytes": path8.stat().st_size, **figures}
            job.say_info(f"export: {path8.name} (ORT format INT8 from {job.int8_onnx.name}): top-1 agreement with "
                         f"FP32 {figures['agreement_with_fp32']['top1_agreement']:.1%}")
        return record
