"""Every file name of the output folders (``compress prune``, ``export``, ``bench``, ``sweep``), in one place.

The stages, ``deploy``, the saved format, the bench and the CLI all read their names from here; the
exported formats and their files are the runtime plugins' (``compress.export.runtimes``), listed here
from its registry.
"""

from __future__ import annotations

from compress.export import runtimes

RECORD = "compress.json"  # the original's spec and the cut record (compress.artifacts.saved)
WEIGHTS = "model.safetensors"  # the pruned weights (compress.artifacts.saved)
SUMMARY = "summary.json"  # the run record
PLAN = "plan.json"
IMPORTANCE = "importance.json"
EXPORT = "export.json"  # what deploy.export_formats wrote and measured
REPORT = "report.json"  # the benchmark report (also report.md, report.png)
BENCH_DIR = "bench"  # the benchmark's own ONNX files and the original's spec
FORMATS = runtimes.formats()  # what --export / --format accept
RUNTIME_FILES = runtimes.files()  # every exported file, by artifact key (Runtime.files)
ONNX, INT8, ENGINE = RUNTIME_FILES["onnx"], RUNTIME_FILES["int8"], RUNTIME_FILES["engine"]
MODEL_FILES = {"onnx": ONNX, "int8": INT8, "engine": ENGINE}  # the files a bench side holds as attributes
SWEEP_RECORD = "sweep.json"  # marks a folder `compress sweep` wrote (compress.artifacts.outputs)
SWEEP_PLOT = "sweep.png"


def spec_name(side: str) -> str:
    """The spec file the memory probe reloads one side of a benchmark from."""
    return f"{side}.spec.json"

