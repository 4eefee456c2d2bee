"""Hand a model to ``export``: the formats of the runtime plugins (``export.runtimes``: ONNX verified, INT8
calibrated on the user's images, engines, IR...), and the original-vs-compressed benchmark. Shared by ``compress prune --export/--bench``,
``compress export`` and ``compress bench``; knows the formats, not the pruning."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from compress import artifacts
from compress.artifacts.saved import source_of
from compress.artifacts.summary import RunSummary
from compress.detection.timing import postprocess_report
from compress.devices import resolve_device
from compress.export.bench import BenchModel, bench_plan, run_bench
from compress.export.onnx import export_onnx
from compress.export.records import BenchRecord, ExportImages, ExportRecord, LatencyRecord
from compress.export.report import render_table, verdict, write_report
from compress.export.runtimes import get, runtimes
from compress.export.runtimes.base import ExportJob
from compress.export.verify import torch_logits
from compress.export.widths import misaligned_widths
from compress.layers.registry import output_width
from compress.models.loading import load_for_bench
from compress.prune.profile import count_macs
from compress.errors import UsageError
from compress.spec import ModelSpec
from compress.tasks import Task
from compress.tasks.evaluate import labelled_pairs
from compress.util.atomic import write_text

VERIFY_IMAGES = 64
CALIBRATION_IMAGES = 256
CHECK_IMAGES = 2000  # images every bench row's file is run on for its own top-1 / agreement (row_figures)
EVAL_BATCH = 64  # images per batch the --eval tensors are sliced into for that check


def export_formats(model: nn.Module, folder: Path, formats: tuple[str, ...], images: torch.Tensor, *,
                   int8_method: str = "minmax", target: str = "cpu", say_info: Callable = print,
                   say_warn: Callable = print, round_to: int | None = None,
                   source: dict[str, str] | None = None) -> ExportRecord:
    """Write ``formats`` into ``folder``, each by the runtime plugin that owns it (``export.runtimes``, in
    registry order: ``model.onnx`` first, which the others are made from), and return the figures recorded in
    ``export.json``. A missing optional runtime fails before anything is written; a plugin may instead record
    why it skipped its format (an engine without a GPU). ``round_to``: the ``--round-to`` the model was pruned
    with (None: not pruned by compress), for an accurate word on widths GPU kernels pad. ``source``: the weights
    the model came from (``compress.artifacts.saved.source_of``), recorded so that a bench can tell the files are
    this model's."""
    require_runtimes(formats)
    formats = with_implied(formats)
    model = model.cpu().eval()
    misaligned = misaligned_widths(model, 8, width_of=output_width)
    if misaligned:
        names = ", ".join(f"{n} ({w})" for n, w in misaligned[:4])
        say_warn(f"{len(misaligned)} layer widths are not multiples of 8 ({names}): TensorRT pads them, "
                 f"so the speed-up shrinks{_padding_advice(round_to)}")
    job = ExportJob(model, folder, formats, images[:VERIFY_IMAGES], images[:CALIBRATION_IMAGES],
                    int8_method=int8_method, target=target, say_info=say_info, say_warn=say_warn)
    entries: dict[str, Any] = {}
    for runtime in runtimes():
        if runtime.exports(formats):
            entries.update(runtime.export(job))
    record = ExportRecord(ExportImages(verify=min(len(images), VERIFY_IMAGES),
                                       calibration=min(len(images), CALIBRATION_IMAGES)),
                          tuple((n, w) for n, w in misaligned), entries, source=source)
    write_text(folder / artifacts.EXPORT, json.dumps(record.to_json(), indent=1, default=str))
    return record


def with_implied(formats) -> tuple[str, ...]:
    """``formats`` and the formats they are made from (``Runtime.implies``), appended once."""
    out = tuple(formats)
    for runtime in runtimes():
        for fmt in out:
            out += tuple(f for f in runtime.implies.get(fmt, ()) if f not in out)
    return out


def require_runtimes(formats) -> list[str]:
    """The optional runtime plugins ``formats`` need; :class:`RuntimeUnavailable` (one line naming the extra,
    exit 5) when one is not installed, before any file is written."""
    wanted = [runtime.name for runtime in runtimes() if runtime.optional and runtime.exports(formats)]
    for name in wanted:
        get(name).require()
    return wanted


def export_all(folder: Path, student: nn.Module, data, config, say) -> ExportRecord:
    """The tail of ``compress prune --export``: calibration images are the held-out + importance ones."""
    images = _calibration_tensor(data)
    return export_formats(student, folder, config.export, images, int8_method=config.int8_method,
                          target=config.target, say_info=say.info, say_warn=say.warn,
                          round_to=config.policy.round_to, source=source_of(folder))


def _padding_advice(round_to: int | None) -> str:
    """What the user can do about padded widths: re-prune with a multiple of 8 only where the
    pruning run chose other widths; widths pruning never changes (a classifier's outputs, protected
    layers) are the model's own."""
    if round_to is not None and round_to % 8:
        return f" (pruned with --round-to {round_to}: the default --round-to 8 avoids it for the pruned layers)"
    if round_to is not None:
        return " (these are widths pruning left as they were, such as a classifier's outputs; pruned widths are multiples of 8)"
    return " (these are the model's own widths)"


padding_advice = _padding_advice  # the public name (tests/test_never_lose_files.py)


def _calibration_tensor(data) -> torch.Tensor:
    parts = []
    for source in (data.holdout, data.importance):
        if isinstance(source, torch.Tensor):
            parts.append(source)
        else:
            parts.extend(batch[0] for batch, _ in zip(source, range(4)))
    return torch.cat(parts)[:max(VERIFY_IMAGES, CALIBRATION_IMAGES)]


@dataclass
class Side:
    """One model of a comparison, as the benchmark needs it."""

    name: str
    module: nn.Module
    loader_arg: str  # a compress folder, or a spec.json, for compress.models.loading.load_for_bench
    sizes: dict[str, int] = field(default_factory=dict)
    onnx: Path | None = None
    int8: Path | None = None
    engine: Path | None = None
    top1: float | None = None
    agreement: float | None = None
    artifacts: dict[str, Path] = field(default_factory=dict)  # runtime plugins' files by artifact key (Runtime.files)
    check: tuple | None = None  # (images, labels or None) every row's file is run on (row_figures)
    trust: bool = False  # the memory probe may rebuild a folder's architecture code (this process already did)


def found_artifacts(folder: Path) -> dict[str, Path]:
    """The runtime files an export left in ``folder``."""
    return {key: folder / name for key, name in artifacts.RUNTIME_FILES.items()
            if key not in artifacts.MODEL_FILES and (folder / name).exists()}


def spec_file(folder: Path, name: str, spec: ModelSpec, trust: bool = False) -> Path:
    path = folder / artifacts.spec_name(name)
    # written only for a model this process has built already: its architecture code has run here (the user's
    # --arch, or a folder's with --trust), so the memory probe's child may build it too
    write_text(path, json.dumps({**spec.to_dict(), **({"trust": True} if trust else {}), "arch_trusted": True}))
    return path


def benchmark(sides: list[Side], out_dir: Path, *, input_shape, backends=("torch", "onnxruntime"),
              batches=(1, 32), threads=None, iters=50, warmup=10, min_seconds=2.0, progress=True,
              measure_memory=True, show: bool = True, latency_target: LatencyRecord | None = None,
              device: str = "cpu", task: dict | None = None, notes: list[str] | None = None,
              judge: tuple[str, str] | None = None) -> dict[str, Any]:
    """Export what the onnxruntime backend needs, time everything interleaved, write the report.

    ``device`` is where the torch backend runs (``cpu``, ``cuda``, ``cuda:N``); ``task``: the names of the
    accuracy columns (``compress.tasks.Task.labels``), recorded as ``report["task"]``; ``notes``: lines added
    to the report's notes (a detector's mAP against the original's boxes); ``judge``: (a side, the
    off-the-shelf alternative it is weighed against), recorded as ``report["verdict"]``."""
    check_batch_memory([side.module for side in sides], input_shape, batches,
                       host_only=device.startswith("cuda") and set(backends) <= {"torch"})
    out_dir.mkdir(parents=True, exist_ok=True)
    example = torch.randn(1, *input_shape)
    models = []
    for side in sides:
        if any(get(b).wants_onnx(side.artifacts) for b in backends) and side.onnx is None:
            (out_dir / artifacts.BENCH_DIR).mkdir(exist_ok=True)
            side.onnx = out_dir / artifacts.BENCH_DIR / f"{side.name}.onnx"
            export_onnx(side.module, example, side.onnx)
        for runtime in runtimes():
            if runtime.name in backends:
                side.artifacts.update(runtime.bench_files(side.module, side.onnx, out_dir / artifacts.BENCH_DIR,
                                                          side.name, input_shape, max(batches), device,
                                                          side.artifacts))
        models.append(BenchModel(
            name=side.name, module=side.module.cpu().eval(), onnx_path=side.onnx, int8_path=side.int8,
            engine_path=side.engine, loader=load_for_bench, loader_args=(str(side.loader_arg), side.trust),
            params=sum(p.numel() for p in side.module.parameters()), macs=_macs(side.module, input_shape),
            sizes=dict(side.sizes), top1=side.top1, agreement=side.agreement, artifacts=dict(side.artifacts)))
    figures = row_figures(sides, models, backends)
    for model in models:
        model.row_figures = figures.get(model.name, {})
        model.int8_top1, model.int8_agreement = _int8_figures(sides, model)
    report = run_bench(models, backends=backends, batches=batches, input_shape=input_shape, threads=threads,
                       iters=iters, warmup=warmup, min_seconds=min_seconds, progress=progress,
                       measure_memory=measure_memory, device=device, root=out_dir)
    if latency_target:
        report["latency_target"] = latency_target.to_json()
    post, post_notes = postprocess_report([(side.name, side.module) for side in sides], input_shape, batches)
    if post:  # detectors: decoding + NMS are outside the timed raw-output network, timed apart
        report["postprocess"] = post
    if post_notes or notes:
        report["notes"] = [*report.get("notes", []), *post_notes, *(notes or [])]
    if task:
        report["task"] = task
    if judge:
        report["verdict"] = verdict(report, *judge)
    sources = {side.name: source_of(side.loader_arg) for side in sides
               if side.loader_arg and (Path(side.loader_arg) / artifacts.RECORD).is_file()}
    if sources:  # the weights each compress folder's rows were measured from
        report["sources"] = sources
    write_report(report, out_dir)
    if show:
        render_table(report)
    return report


def check_batch_memory(modules: list[nn.Module], input_shape, batches, *, host_only: bool = False) -> None:
    """:class:`UsageError` (exit 2) before anything is timed when the largest batch clearly cannot fit in the
    memory available: a floor of one forward pass (the input plus the largest layer output, per image, measured
    at batch 1), times the batch. ``host_only``: the models run on a GPU (nothing to say about host memory)."""
    available = available_memory()
    if available is None or host_only or not batches:
        return
    batch = max(batches)
    floor = max(_forward_floor(module, input_shape) for module in modules)
    if batch * floor > available:
        fits = max(1, available // floor)
        raise UsageError(f"--batch {batch}: one forward pass at input {'x'.join(map(str, input_shape))} needs at "
                         f"least {batch * floor / 2**30:.1f} GiB ({floor / 2**20:.2f} MiB per image), more than the "
                         f"{available / 2**30:.1f} GiB of memory available", f"choose --batch {fits} or less")


def _forward_floor(module: nn.Module, input_shape) -> int:
    """Bytes one image needs at once in a forward pass, at least: its input and the two largest layer outputs
    (a layer's output is alive with its input, an earlier output)."""
    largest = [0, 0]

    def hook(_mod, _inp, out):
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor):
                largest[:] = sorted([*largest, t.numel() * t.element_size()])[-2:]

    handles = [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]
    was = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(torch.zeros(1, *input_shape, device=next(module.parameters(), torch.zeros(0)).device))
    except Exception:  # noqa: BLE001 - the estimate is advice: a model it cannot run is timed (and fails) as before
        return 0
    finally:
        for handle in handles:
            handle.remove()
        module.train(was)
    return 4 * math.prod(input_shape) + sum(largest)


def available_memory() -> int | None:
    """Bytes of memory this process may still use: MemAvailable, bounded by a cgroup limit; None if unknown."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def row_figures(sides: list[Side], models, backends) -> dict[str, dict[tuple[str, str], dict]]:
    """``{model: {(backend, precision): {"agreement", "top1", "n"}}}``: each file a bench row runs from,
    run by its own runtime on the sides' ``check`` images: top-1 agreement with the original model in
    PyTorch (the first side) and top-1 against the labels when there are any. Empty without images."""
    check = _check_of(sides)
    if check is None:
        return {}
    images, labels = check
    reference = _reference(sides, images)
    out: dict[str, dict] = {}
    for backend, variants in bench_plan(models, backends, []):
        runtime = get(backend)
        for model, precision, path in variants:
            logits = runtime.row_logits(model, path, images)
            if logits is None:  # no file to run apart from the timing
                continue
            out.setdefault(model.name, {})[(backend, precision)] = _file_figures(logits, reference, labels)
    return out


def _int8_figures(sides: list[Side], model) -> tuple[float | None, float | None]:
    """(top-1, agreement) of ``model``'s INT8 ONNX file (``int8_path``, run by onnxruntime) on the sides'
    ``check`` images: the report's "INT8" columns. Its onnxruntime bench row's figures when that row ran,
    else the file is run here (a bench on other backends); (None, None) without the file or images."""
    check = _check_of(sides)
    if model.int8_path is None or check is None:
        return None, None
    found = model.row_figures.get(("onnxruntime", "int8"))
    if found is None:
        images, labels = check
        logits = get("onnxruntime").row_logits(model, model.int8_path, images)
        found = _file_figures(logits, _reference(sides, images), labels)
    return found["top1"], found["agreement"]


def _check_of(sides: list[Side]):
    return next((side.check for side in sides if side.check is not None), None)


def _reference(sides: list[Side], images):
    """The original model's (the first side's) top-1 classes in PyTorch: what agreement is counted against."""
    return torch_logits(sides[0].module, images).argmax(1)


def _file_figures(logits, reference, labels) -> dict:
    pred = logits.argmax(1)
    return {"agreement": float((pred == reference).mean()), "n": int(len(pred)),
            "top1": None if labels is None else float((pred == labels.numpy()).mean())}


def _macs(module: nn.Module, input_shape) -> int:
    return count_macs(module, tuple(input_shape))


def bench_pair(folder: Path, loaded, student: nn.Module, summary: RunSummary, data, config, say,
               alternative: Side | None = None, *, task: Task, evaluation: Any = None) -> BenchRecord:
    """The tail of ``compress prune --bench``: original vs compressed (and ``--baseline``'s alternative),
    written into the folder. ``evaluation``: the run's ``--eval`` data as ``task.labelled`` read it, if any."""
    shape = tuple(loaded.spec.input_size)
    top1, agreement = summary.written_figures()
    bench_dir = folder / artifacts.BENCH_DIR
    bench_dir.mkdir(exist_ok=True)
    original = Side("original", loaded.model, str(spec_file(bench_dir, "original", loaded.spec, config.load.get("trust", False))),
                    sizes={"checkpoint": loaded.size_bytes}, top1=summary.metric_before, agreement=1.0)
    compressed = Side("compressed", student, str(folder), sizes={"checkpoint": (folder / artifacts.WEIGHTS).stat().st_size},
                      top1=top1, agreement=agreement, trust=True)  # this run wrote it from a model it built
    for attr, name in artifacts.MODEL_FILES.items():
        if (folder / name).exists():
            setattr(compressed, attr, folder / name)
    compressed.artifacts = found_artifacts(folder)
    sides = [original, compressed, *([alternative] if alternative is not None else [])]
    check = check_images(task, evaluation, data.holdout)
    for side in sides:
        side.check = check
    device = str(resolve_device(config.device))
    say.info(f"bench: timing original and compressed, interleaved (torch on {device} and onnxruntime, batch 1 and 32)")
    report = benchmark(sides, folder, input_shape=shape, progress=config.progress, show=False,
                       latency_target=summary.latency, device=device, task=task.labels(),
                       notes=task.report_notes(summary.task_figures),
                       judge=(compressed.name, alternative.name) if alternative is not None else None)
    render_table(report, console=_stderr_console())  # stdout is the prune command's (its tables, or --json)
    return BenchRecord(artifacts.REPORT, tuple(report.get("comparisons", [])), report.get("verdict"))


def check_images(task: Task, evaluation: Any, holdout: Any):
    """(images, labels or None) every file of ``prune --bench`` is run on for its row's and the INT8 columns'
    figures, as ``compress bench`` chooses them: the first :data:`CHECK_IMAGES` images of the run's ``--eval``
    data (``evaluation``, already read) with their labels, else the held-out calibration images (agreement with
    the original only). None for tasks other than classification (``row_figures`` compares arg-max classes)."""
    if task.name != "classify":
        return None
    if evaluation is not None:
        batches = labelled_pairs(evaluation, EVAL_BATCH)
    else:
        batches = [(holdout, None)] if isinstance(holdout, torch.Tensor) else ((batch[0], None) for batch in holdout)
    return first_images(batches)


def first_images(batches, limit: int = CHECK_IMAGES):
    """(images, labels or None): the first ``limit`` of ``(images, labels or None)`` batches; None when empty."""
    xs, ys, n = [], [], 0
    for x, y in batches:
        if n >= limit:
            break
        xs.append(x)
        ys.append(y)
        n += len(x)
    if not xs:
        return None
    labels = None if ys[0] is None else torch.cat(ys)[:limit]
    return torch.cat(xs)[:limit], labels


def _stderr_console():
    from rich.console import Console

    return Console(file=sys.stderr, width=180)
