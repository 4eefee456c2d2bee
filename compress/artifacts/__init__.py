"""The output folder in one place: every file name (``names``), the saved record (``saved``: the
reloadable pruned model), the run record (``summary``: ``summary.json``) and the output-folder
policy (``outputs``: never replace a folder that is not ours).

The file names are re-exported here (``artifacts.ONNX``). ``saved`` imports torch, so it is
imported by name (``from compress.artifacts.saved import ...``), never from this file: the CLI
reads the names before torch loads.
"""

from compress.artifacts.names import (BENCH_DIR, ENGINE, EXPORT, FORMATS, IMPORTANCE, INT8, MODEL_FILES, ONNX, PLAN,
                                      RECORD, REPORT, RUNTIME_FILES, SUMMARY, SWEEP_PLOT, SWEEP_RECORD, WEIGHTS,
                                      spec_name)
from compress.artifacts.summary import Recalibration, Recovery, RunSummary

__all__ = ["BENCH_DIR", "ENGINE", "EXPORT", "FORMATS", "IMPORTANCE", "INT8", "MODEL_FILES", "ONNX", "PLAN", "RECORD",
           "Recalibration", "Recovery", "REPORT", "RUNTIME_FILES", "RunSummary", "SUMMARY", "SWEEP_PLOT", "SWEEP_RECORD",
           "WEIGHTS", "spec_name"]
