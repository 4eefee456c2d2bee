"""Every file name of the output folders (``compress prune``, ``export``, ``bench``, ``sweep``), in one place.

Imports nothing of the project: the stages, ``deploy``, the saved format, the bench and the CLI
all read their names from here.
"""

from __future__ import annotations

RECORD = "compress.json"  # the original's spec and the cut record (compress.artifacts.saved)
WEIGHTS = "model.safetensors"  # the pruned weights (compress.artifacts.saved)
SUMMARY = "summary.json"  # the run record
PLAN = "plan.json"
IMPORTANCE = "importance.json"
EXPORT = "export.json"  # what deploy.export_formats wrote and measured
REPORT = "report.json"  # the benchmark report (also report.md, report.png)
BENCH_DIR = "bench"  # the benchmark's own ONNX files and the original's spec
ONNX = "model.onnx"
INT8 = "model.int8.onnx"
ENGINE = "model.engine"
FORMATS = ("onnx", "int8", "trt", "openvino", "openvino-int8", "executorch", "executorch-int8",
           "aoti")  # what --export / --format accept
MODEL_FILES = {"onnx": ONNX, "int8": INT8, "engine": ENGINE}  # exported formats, by bench attribute
# the runtime plugins' files (compress.export.runtimes), by bench artifact key
RUNTIME_FILES = {"openvino": "model.openvino.xml", "openvino.int8": "model.int8.openvino.xml",
                 "executorch": "model.pte", "executorch.int8": "model.int8.pte", "aoti": "model.aoti.pt2"}
SWEEP_RECORD = "sweep.json"  # marks a folder `compress sweep` wrote (compress.artifacts.outputs)
SWEEP_PLOT = "sweep.png"


def spec_name(side: str) -> str:
    """The spec file the memory probe reloads one side of a benchmark from."""
    return f"{side}.spec.json"

