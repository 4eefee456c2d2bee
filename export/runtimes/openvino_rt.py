"""OpenVINO on the CPU (``pip install 'compress[openvino]'``): IR files converted from the verified ONNX.

* FP32: ``model.openvino.xml`` (+ ``.bin``) from ``model.onnx`` by ``openvino.convert_model``, weights
  kept in float32 (``compress_to_fp16=False``); compiled with ``INFERENCE_PRECISION_HINT=f32`` so a
  CPU with bf16/AMX units does not silently run it in bfloat16.
* INT8: ``model.int8.openvino.xml`` from the Q/DQ ``model.int8.onnx`` (calibrated on the same images,
  ``export.quantize``): OpenVINO's low-precision transformations run the quantized convolutions in
  int8. One calibration, one set of scales for onnxruntime and OpenVINO alike.
* Timing: one compiled model per file, ``PERFORMANCE_HINT=LATENCY`` (one stream), fixed
  ``INFERENCE_NUM_THREADS``, threads not pinned (``PINNING``); the IR keeps the ONNX model's dynamic batch.
  The original ResNet-32 once looked 5-8x slower than its half-MAC pruned version here at batch 1 (10-35
  vs 1.7-3 ms): not OpenVINO but the median of preempted calls on shared cores (``export.latency``); its
  undisturbed calls took 2.2 vs 1.4 ms. Measured beside it (2 shared cores, two repeats): the IR
  reshaped to a static batch of 1 runs 9-15 % faster than with the dynamic batch, original and pruned
  alike (2.33 -> 2.12 and 1.58 -> 1.39 ms), so speed-ups do not change; 1 thread instead of 2 changed
  both by under 10 %. Rows time the file as written (dynamic batch).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from compress.export.errors import ExportError
from compress.export.runtimes.base import Runtime

FP32_NAME, INT8_NAME = "model.openvino.xml", "model.int8.openvino.xml"
# Threads not pinned to cores: on CPUs shared with other processes, pinned threads wait for their core
# (ResNet-32 batch 1, 2 threads, load average ~9: p50 1.83 vs 1.74 ms, p90 8.8 vs 2.4 ms pinned vs not).
PINNING = False


class OpenVINORuntime(Runtime):
    name = "openvino"
    title = "OpenVINO"
    package = "openvino"
    extra = "openvino"
    takes_onnx = True
    formats = ("openvino", "openvino-int8")
    calibrated = ("openvino-int8",)
    implies = {"openvino-int8": ("int8",)}  # OpenVINO INT8 runs the calibrated Q/DQ ONNX model
    files = {"openvino": FP32_NAME, "openvino.int8": INT8_NAME}
    optional = True
    latency = True
    hint = "extra: openvino"
    bench_hint = "extra: compress[openvino]"
    env_labels = (("openvino", "OpenVINO"),)

    def version(self) -> str | None:
        try:
            import openvino

            return openvino.get_version().split("-")[0]
        except Exception:
            return None

    def describe(self) -> dict[str, Any]:
        return {"openvino": self.version(), "openvino_cpu_pinning": PINNING}

    def import_runtime(self) -> None:
        _core(self.require())

    def compile(self, source, threads: int | None):
        """A compiled CPU model of an IR/ONNX file or an ``openvino.Model``."""
        ov = self.require()
        config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_PRECISION_HINT": "f32",
                  "ENABLE_CPU_PINNING": PINNING}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        return _core(ov).compile_model(str(source) if isinstance(source, Path) else source, "CPU", config)

    def load(self, artifact, threads, batch=None):
        request = self.compile(Path(artifact), threads).create_infer_request()
        return lambda x: request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def runner(self, artifact, module, example, threads, device):
        request = self.compile(Path(artifact), threads).create_infer_request()
        x = np.ascontiguousarray(example.detach().cpu().numpy(), dtype=np.float32)
        return lambda: request.infer({0: x}, share_inputs=True, share_outputs=True)

    def from_onnx(self, onnx_path, example, threads):
        request = self.compile(Path(onnx_path), threads).create_infer_request()  # read now: the file may go
        x = np.ascontiguousarray(example.detach().cpu().numpy(), dtype=np.float32)
        return lambda: request.infer({0: x}, share_inputs=True, share_outputs=True)

    def file_size(self, path):
        return ir_size(Path(path))  # the .xml and its .bin weights

    def wants_onnx(self, artifacts):
        return self.name not in artifacts and self.available()[0]  # its FP32 IR is converted from the ONNX

    def bench_files(self, module, onnx, folder, name, input_shape, max_batch, device, artifacts):
        if not self.wants_onnx(artifacts):
            return {}
        folder.mkdir(exist_ok=True)
        return {self.name: self.convert(onnx, folder / f"{name}.openvino.xml")}

    def convert(self, onnx_path: Path, xml_path: Path) -> Path:
        """``onnx_path`` -> IR ``xml_path`` (+ ``.bin``), both written atomically (bin first, then xml)."""
        ov = self.require()
        try:
            model = ov.convert_model(str(onnx_path))
        except Exception as err:
            first = (str(err).strip().splitlines() or [""])[0][:300]
            raise ExportError(f"OpenVINO cannot convert {onnx_path.name}: {first}",
                              "check the model's operators against OpenVINO's ONNX support") from err
        with tempfile.TemporaryDirectory(prefix=".compress-ov-", dir=xml_path.parent) as tmp:
            tmp_xml = Path(tmp) / xml_path.name
            ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
            os.replace(tmp_xml.with_suffix(".bin"), xml_path.with_suffix(".bin"))
            os.replace(tmp_xml, xml_path)
        return xml_path

    def export(self, job):
        model, folder, formats, images, say_info = job.model, job.folder, job.formats, job.images, job.say_info
        onnx_path, int8_onnx = job.onnx_path, job.int8_onnx
        record: dict[str, Any] = {}
        xml = self.convert(onnx_path, folder / FP32_NAME)
        check = self.verify(xml, model, images)
        record["openvino"] = {"path": xml.name, "openvino": self.version(), "size_bytes": ir_size(xml),
                              "verification": check.to_dict()}
        say_info(f"export: {xml.name} (OpenVINO {self.version()}, FP32) matches PyTorch: max |diff| "
                 f"{check.max_abs_diff:.1e}, top-1 agreement {check.top1_agreement:.1%} on {check.n} images")
        if "openvino-int8" in formats:
            if int8_onnx is None:
                raise ExportError("openvino-int8 needs the INT8 ONNX model", "export with --format int8,openvino-int8")
            xml8 = self.convert(int8_onnx, folder / INT8_NAME)
            figures = self.int8_figures(xml8, xml, model, images)
            record["openvino-int8"] = {"path": xml8.name, "source": int8_onnx.name, "size_bytes": ir_size(xml8),
                                       **figures}
            say_info(f"export: {xml8.name} (OpenVINO INT8 from {int8_onnx.name}): top-1 agreement with FP32 "
                     f"{figures['agreement_with_fp32']['top1_agreement']:.1%}, "
                     f"{ir_size(xml8) / 2**10:.0f} KiB")
        return record


def ir_size(xml: Path) -> int:
    """Bytes of an IR: the ``.xml`` and its ``.bin``."""
    return sum(p.stat().st_size for p in (xml, xml.with_suffix(".bin")) if p.exists())


_CORE = None


def _core(ov):
    global _CORE
    if _CORE is None:
        _CORE = ov.Core()
    return _CORE

