"""Benchmark orchestration: latency, throughput, peak memory and size of several models, compared.

Knows nothing of pruning: it takes ``BenchModel`` records (a module, its ONNX / INT8 / engine files,
figures the caller computed) and returns one raw report dict (JSON-serialisable) that
``export.report`` renders. The first model is the baseline every other row is compared with.

Rows: one per (model, backend, precision, batch). Backends are runtime plugins (``export.runtimes``):
each says which (precision, file) rows a model has there (``Runtime.variants``: the module itself,
``onnx_path`` / ``int8_path`` / ``engine_path``, or a plugin's files in ``artifacts`` under its artifact
keys) and how one batch is run. A runtime that cannot run here is listed under ``skipped`` with the reason
(which extra to install). All runners of one (backend, batch) are timed interleaved (``export.latency``).
Memory: peak RSS of a fresh process per row (``export.memory``), and for torch on CUDA the peak
GPU memory allocated (``gpu_peak_bytes``), also for a plugin that runs on torch's CUDA allocator. Each row
records the ``device`` it ran on.

Comparisons: every row against the baseline model's fp32 row of the same backend and batch:
``speedup`` = baseline p50 / row p50; ``mac_ratio`` = baseline MACs / model MACs (the speed-up
MACs predict; INT8 rows keep the model's MACs); ``memory_change`` = relative change of the peak
RSS and ``model_memory_change`` of the model-attributable part, ``gpu_memory_change`` of the
peak GPU memory (torch on CUDA); ``size_change`` of the artifact the row ran from.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from compress.export.cpu_load import BUSY, cpu_model, others_busy
from compress.export.errors import ExportError
from compress.export.latency import passive_omp, preemption_notes, time_interleaved
from compress.export.memory import peak_rss_subprocess
from compress.export.runtimes import file_owner, get as get_runtime
from compress.export.sizes import artifact_size

SCHEMA = 1


@dataclass
class BenchModel:
    """One model to benchmark; only ``name`` and ``module`` are required."""

    name: str
    module: nn.Module
    onnx_path: Path | None = None
    int8_path: Path | None = None
    engine_path: Path | None = None
    engine_precision: str = "fp32"  # label of the engine's rows: fp32 / fp16 / int8
    loader: str | Callable[..., Any] | None = None  # module-level function (or "module:function") the torch memory probe calls
    loader_args: tuple = ()
    params: int | None = None
    macs: int | None = None
    sizes: dict[str, int] = field(default_factory=dict)  # e.g. {"checkpoint": n}; files are added
    top1: float | None = None  # accuracy (fraction) on a labelled set, when the caller has one
    agreement: float | None = None  # top-1 agreement with the baseline model
    int8_top1: float | None = None
    int8_agreement: float | None = None
    # files of the other runtimes, by artifact key (Runtime.files: the runtime's name, "<name>.int8")
    artifacts: dict[str, Path] = field(default_factory=dict)
    # {(backend, precision): {"agreement", "top1", "n"}}: that row's own file run on labelled/reference images
    row_figures: dict = field(default_factory=dict)

    def artifact(self, backend: str, precision: str) -> str:
        """The ``sizes`` key of the file a row runs from."""
        from compress.export.runtimes import get

        return get(backend).size_key(precision)


def environment(threads: int | None, backends: Sequence[str] | None = None) -> dict[str, Any]:
    """Machine and library versions the figures were measured with: the core runtimes' always, the optional
    ones' (``Runtime.optional``) when they ran."""
    from compress.export.runtimes import runtimes

    backends = tuple(backends or ())
    core = {k: v for rt in runtimes() if not rt.optional for k, v in rt.environment(backends).items()}
    optional = {k: v for rt in runtimes() if rt.optional for k, v in rt.environment(backends).items()}
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "gpu": gpu, "platform": platform.platform(),
        "python": platform.python_version(), **core, "threads": threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "openmp_choice": os.environ.get("COMPRESS_OPENMP"), "load_average": _load_average(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **optional,
    }


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def run_bench(models: Sequence[BenchModel], *, backends: Sequence[str] = ("torch", "onnxruntime"),
              batches: Sequence[int] = (1, 32), input_shape: Sequence[int], threads: int | None = None,
              warmup: int = 10, iters: int = 50, min_seconds: float | None = None, measure_memory: bool = True,
              progress: bool = True, device: str = "cpu", seed: int = 0,
              root: str | Path | None = None) -> dict[str, Any]:
    """Time, measure and compare ``models`` (the first is the baseline). Returns the raw report.

    ``input_shape`` is (C, H, W). ``threads`` fixes CPU threads for torch and onnxruntime (default:
    all cores). ``device`` is where the torch backend runs. ``root``: the folder the report is written to;
    the models' files are recorded relative to it when they are inside it (as ``export.json`` names its
    files), absolute otherwise, so a report written into a folder that is renamed afterwards (``prune``'s
    atomic output) names the files where they end up.
    """
    if not models:
        raise ExportError("no models to benchmark")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ExportError(f"model names must be unique, got {names}")
    threads = threads or os.cpu_count() or 1
    spinning_torch = "torch" in backends and threads > 1 and not passive_omp()
    busy = others_busy() if spinning_torch else None  # before any timing: the other processes' share of the CPUs
    for m in models:
        files = {"onnx": m.onnx_path, "int8": m.int8_path, "engine": m.engine_path, **m.artifacts}
        for key, path in files.items():
            if path is not None and key not in m.sizes and Path(path).exists():
                owner = file_owner(key)
                m.sizes[key] = owner.file_size(path) if owner is not None else artifact_size(path)
    gen = torch.Generator().manual_seed(seed)
    examples = {b: torch.randn((b, *input_shape), generator=gen) for b in batches}
    rows: list[dict] = []
    skipped: list[dict] = []
    plan = bench_plan(models, backends, skipped)
    with _progress(progress, len(plan) * len(batches)) as advance:
        for backend, variants in plan:
            for batch in batches:
                runtime = get_runtime(backend)
                runners = {}
                for model, precision, path in variants:
                    runners[(model.name, precision)] = runtime.runner(path, model.module, examples[batch], threads,
                                                                      device)
                stats = time_interleaved({f"{n}/{p}": r for (n, p), r in runners.items()}, warmup=warmup,
                                         iters=iters, min_seconds=min_seconds, batch=batch, threads=threads)
                for model, precision, path in variants:
                    s = stats[f"{model.name}/{precision}"]
                    row = {"model": model.name, "backend": backend, "precision": precision, "batch": batch,
                           "device": runtime.row_device(device), "latency_ms": s.to_dict(),
                           "throughput": s.throughput, "memory": None,
                           "size_bytes": model.sizes.get(model.artifact(backend, precision)),
                           **_figures(model, backend, precision)}
                    if measure_memory:
                        row["memory"], row["memory_note"] = _memory(model, backend, path, batch, input_shape,
                                                                    threads, device)
                    rows.append(row)
                advance(f"{backend} batch {batch}")
    notes = []
    if busy is not None and busy >= BUSY:  # only sampled when torch runs spinning threads
        notes.append(f"torch timed with {threads} spinning OpenMP threads while other processes kept {busy:.0%} of "
                     "the CPUs busy: its latency can be inflated many times; rerun on an idle machine or with "
                     "OMP_WAIT_POLICY=PASSIVE set before starting")
    notes.extend(preemption_notes(rows))
    return {
        "schema": SCHEMA,
        "notes": notes,
        "environment": environment(threads, backends),
        "settings": {"backends": list(backends), "batches": list(batches), "input_shape": list(input_shape),
                     "threads": threads, "warmup": warmup, "iters": iters, "min_seconds": min_seconds,
                     "device": device, "baseline": models[0].name},
        "models": [_model_record(m, root) for m in models],
        "rows": rows,
        "comparisons": compare_rows(rows, models),
        "skipped": skipped,
    }


def bench_plan(models, backends, skipped) -> list[tuple[str, list[tuple[BenchModel, str, Path | None]]]]:
    """``[(backend, [(model, precision, artifact)])]``: what each runtime plugin can run of each model;
    a runtime that is not installed (or has no GPU) and models without its file go to ``skipped``."""
    plan = []
    for backend in backends:
        runtime = get_runtime(backend)
        ok, reason = runtime.available()
        if not ok:
            skipped.append({"backend": backend, "model": None, "reason": reason})
            continue
        variants = []
        for m in models:
            rows, missing = runtime.variants(m)
            variants.extend((m, precision, path) for precision, path in rows)
            skipped.extend({"backend": backend, "model": m.name, "reason": why} for why in missing)
        if variants:
            plan.append((backend, variants))
    return plan


def _figures(model: BenchModel, backend: str, precision: str) -> dict:
    """The row's own top-1 agreement with the original (and top-1) when the caller measured them."""
    found = model.row_figures.get((backend, precision))
    return {"agreement": found["agreement"], "top1": found["top1"], "accuracy_images": found["n"]} if found else {}


def _memory(model: BenchModel, backend: str, path, batch: int, input_shape, threads: int, device: str):
    try:
        if backend == "torch":
            if not model.loader:
                return None, "no loader given for the torch memory probe"
            result = peak_rss_subprocess("torch", loader=model.loader, loader_args=model.loader_args, batch=batch,
                                         input_shape=input_shape, threads=threads, device=device)
        elif get_runtime(backend).memory:
            result = peak_rss_subprocess(backend, onnx_path=path, batch=batch, input_shape=input_shape,
                                         threads=threads)
        else:
            return None, get_runtime(backend).memory_note
    except ExportError as err:
        return None, str(err)
    return result.to_dict(), None


def compare_rows(rows: list[dict], models: Sequence[BenchModel]) -> list[dict]:
    """Each row against the baseline model's fp32 row of the same backend and batch (see module doc)."""
    by_name = {m.name: m for m in models}
    base_name = models[0].name
    base_rows = {(r["backend"], r["batch"]): r for r in rows if r["model"] == base_name and r["precision"] == "fp32"}
    out = []
    for row in rows:
        base = base_rows.get((row["backend"], row["batch"]))
        if base is None or base is row:
            continue
        m, b = by_name[row["model"]], by_name[base_name]
        out.append({
            "baseline": base_name, "model": row["model"], "backend": row["backend"], "precision": row["precision"],
            "batch": row["batch"],
            "speedup": _ratio(base["latency_ms"]["p50"], row["latency_ms"]["p50"]),
            "mac_ratio": _ratio(b.macs, m.macs),
            "memory_change": _change(_get(base, "memory", "peak_rss_bytes"), _get(row, "memory", "peak_rss_bytes")),
            "model_memory_change": _change(_get(base, "memory", "model_rss_bytes"),
                                           _get(row, "memory", "model_rss_bytes")),
            "gpu_memory_change": _change(_get(base, "memory", "gpu_peak_bytes"), _get(row, "memory", "gpu_peak_bytes")),
            "size_change": _change(base.get("size_bytes"), row.get("size_bytes")),
        })
    return out


def _model_record(m: BenchModel, root: str | Path | None = None) -> dict:
    return {"name": m.name, "params": m.params, "macs": m.macs, "sizes": dict(m.sizes), "top1": m.top1,
            "agreement": m.agreement, "int8_top1": m.int8_top1, "int8_agreement": m.int8_agreement,
            "onnx_path": recorded_path(m.onnx_path, root), "int8_path": recorded_path(m.int8_path, root),
            "engine_path": recorded_path(m.engine_path, root),
            "engine_precision": m.engine_precision if m.engine_path else None}


def recorded_path(path: str | Path | None, root: str | Path | None) -> str | None:
    """``path`` as a report records it: relative to ``root`` (POSIX separators) when inside it, else absolute;
    as given without a ``root``."""
    if path is None:
        return None
    if root is None:
        return str(path)
    full, base = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    return full.relative_to(base).as_posix() if full.is_relative_to(base) else str(full)


def _get(row: dict, *keys):
    for k in keys:
        row = row.get(k) if isinstance(row, dict) else None
    return row


def _ratio(a, b) -> float | None:
    return float(a) / float(b) if a and b else None


def _change(before, after) -> float | None:
    return (float(after) - float(before)) / float(before) if before and after is not None else None


class _progress:
    """A rich progress bar on stderr (off when ``enabled`` is False or stderr is not a terminal)."""

    def __init__(self, enabled: bool, total: int):
        self.enabled = enabled and sys.stderr.isatty()
        self.total = total

    def __enter__(self):
        if not self.enabled:
            return lambda label: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("bench {task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self._bar.__enter__()
        task = self._bar.add_task("", total=self.total)
        return lambda label: self._bar.update(task, advance=1, description=label)

    def __exit__(self, *exc):
        if self.enabled:
            self._bar.__exit__(*exc)
        return False
