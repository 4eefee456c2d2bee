"""Prune at several ratios and measure each: the table a user needs to pick a ratio.

``compress sweep`` parses options into a base :class:`~compress.run.pipeline.PruneConfig` and calls
:func:`run_sweep`; notebooks can call it the same way.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress import artifacts
from compress.run.deploy import Side, benchmark
from compress.export.report import sweep_plot
from compress.models.loading import load_model
from compress.artifacts.outputs import check_output, input_paths
from compress.run.pipeline import STDERR, PruneConfig, PruneResult, Reporter, run_prune
from compress.run.sibling import NAME as ALTERNATIVE, baseline_side, load_baseline
from compress.tasks import Task
from compress.util.atomic import write_text

@dataclass
class SweepResult:
    """One row per ratio (ratio 0 is the original), the benchmark report and the plot."""

    rows: list[dict[str, Any]]
    report: Path
    plot: Path
    task: Task  # whose metric the ``top1`` column holds (top-1, mIoU)
    baseline: dict[str, Any] | None = None  # --baseline: the alternative's macs, params, latency_ms, top1, agreement


def run_sweep(base: PruneConfig, ratios: tuple[float, ...], root: str | Path, *, backend: str = "onnxruntime",
              batch: int = 1, overwrite: bool = False, reporter: Reporter = STDERR,
              baseline: tuple[str, dict] | None = None) -> SweepResult:
    """Prune ``base`` at each ratio into ``root/ratio-R``, then time them all beside the original on
    ``backend`` at ``batch`` (interleaved) and write the report and ``sweep.png`` into ``root``.
    ``baseline``: (checkpoint, load options) of an off-the-shelf alternative, timed too and plotted as a point."""
    root = check_output(Path(root), overwrite=overwrite, markers=(artifacts.SWEEP_RECORD,),
                        inputs=input_paths(checkpoint=base.checkpoint, calib=base.calib, eval=base.eval_dir,
                                           arch=base.load.get("arch")))
    original = load_model(base.checkpoint, **base.load)
    alt = load_baseline(baseline[0], baseline[1], original, reporter.info) if baseline else None  # before any pruning
    root.mkdir(parents=True, exist_ok=True)
    write_text(root / artifacts.SWEEP_RECORD, json.dumps({"checkpoint": str(base.checkpoint), "ratios": list(ratios)}))  # marks it ours
    results: list[tuple[float, PruneResult]] = []
    for ratio in ratios:
        reporter.info(f"sweep: ratio {ratio}")
        config = dataclasses.replace(base, out=str(root / f"ratio-{ratio:g}"), overwrite=True,
                                     policy=dataclasses.replace(base.policy, ratio=ratio))
        results.append((ratio, run_prune(config, reporter)))
    task = results[0][1].task
    sides = [Side("original", original.model, "", sizes={"checkpoint": original.size_bytes})]
    sides += [Side(f"ratio-{r:g}", res.model, str(res.out)) for r, res in results]
    if alt is not None:
        sides.append(baseline_side(alt, original.model, root / artifacts.BENCH_DIR, trust=baseline[1].get("trust", False),
                                   eval_dir=base.eval_dir, task=task, say=reporter.info))
    report = benchmark(sides, root, input_shape=tuple(original.spec.input_size), backends=(backend,),
                       batches=(batch,), measure_memory=False, show=False, device=base.device, task=task.labels())
    rows = sweep_rows(report, results, backend, batch)
    point = _baseline_point(report, backend, batch) if alt is not None else None
    sweep_plot(rows, root / artifacts.SWEEP_PLOT, title=f"{Path(base.checkpoint).name}: pruning sweep",
               labels=(task.metric_label, task.agreement_column), baseline=point)
    return SweepResult(rows=rows, report=root / artifacts.REPORT, plot=root / artifacts.SWEEP_PLOT, task=task,
                       baseline=point)


def _baseline_point(report: dict, backend: str, batch: int) -> dict:
    """The alternative's figures, in the sweep rows' keys."""
    m = next(m for m in report["models"] if m["name"] == ALTERNATIVE)
    p50 = next((r["latency_ms"]["p50"] for r in report["rows"] if r["model"] == ALTERNATIVE and r["backend"] == backend
                and r["batch"] == batch and r["precision"] == "fp32"), None)
    return {"name": ALTERNATIVE, "macs": m["macs"], "params": m["params"], "latency_ms": p50, "top1": m["top1"],
            "agreement": m["agreement"]}


def sweep_rows(report: dict, results: list[tuple[float, PruneResult]], backend: str, batch: int) -> list[dict]:
    """The table: MACs, parameters, p50 latency, speed-up and the written model's figures per ratio
    (``top1`` holds the task's labelled metric: top-1, or mIoU)."""
    p50 = {row["model"]: row["latency_ms"]["p50"] for row in report["rows"]
           if row["backend"] == backend and row["batch"] == batch and row["precision"] == "fp32"}
    base = report["models"][0]
    rows = [{"ratio": 0.0, "macs": base["macs"], "params": base["params"], "latency_ms": p50.get("original"),
             "speedup": 1.0, "top1": results[0][1].summary.metric_before, "agreement": 1.0}]
    for ratio, res in results:
        s, name = res.summary, f"ratio-{ratio:g}"
        top1, agreement = s.written_figures()
        rows.append({"ratio": ratio, "macs": s.macs_after, "params": s.params_after, "latency_ms": p50.get(name),
                     "speedup": round(p50["original"] / p50[name], 3) if p50.get(name) else None,
                     "top1": top1, "agreement": agreement})
        against = res.task.sweep_figures(s.task_figures)  # figures against the original (detection: mAP@0.5)
        rows[0].update(dict.fromkeys(against, 1.0))
        rows[-1].update(against)
    return rows
