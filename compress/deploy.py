"""Hand a model to ``export``: ONNX (verified), INT8 ONNX (calibrated on the user's images),
TensorRT, and the original-vs-compressed benchmark. Shared by ``compress prune --export/--bench``,
``compress export`` and ``compress bench``; knows the formats, not the pruning."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from compress.atomic import write_text
from compress.spec import ModelSpec

FORMATS = ("onnx", "int8", "trt")
VERIFY_IMAGES = 64
CALIBRATION_IMAGES = 256


def export_formats(model: nn.Module, folder: Path, formats: tuple[str, ...], images: torch.Tensor, *,
                   int8_method: str = "minmax", target: str = "cpu", say_info: Callable = print,
                   say_warn: Callable = print) -> dict[str, Any]:
    """Write ``model.onnx`` / ``model.int8.onnx`` / ``model.engine`` into ``folder`` and return the
    figures recorded in ``export.json``. A missing TensorRT (or GPU) skips ``trt`` with its reason
    after the other formats are done."""
    from compress.calibrate.readers import TensorCalibrationReader
    from compress.export.errors import TensorRTUnavailable
    from compress.export.onnx import export_onnx
    from compress.export.quantize import SATURATION_NOTE, quantize_int8, saturating_u8s8
    from compress.export.tensorrt import build_engine
    from compress.export.verify import compare_sessions, verify_onnx
    from compress.export.widths import misaligned_widths

    model = model.cpu().eval()
    record: dict[str, Any] = {"images": {"verify": min(len(images), VERIFY_IMAGES),
                                         "calibration": min(len(images), CALIBRATION_IMAGES)}}
    verify_set = images[:VERIFY_IMAGES]
    misaligned = misaligned_widths(model, 8)
    if misaligned:
        names = ", ".join(f"{n} ({w})" for n, w in misaligned[:4])
        say_warn(f"{len(misaligned)} layer widths are not multiples of 8 ({names}...): TensorRT pads them, "
                 "so the speed-up shrinks (prune with --round-to 8)")
    record["misaligned_widths"] = [[n, w] for n, w in misaligned]
    onnx_path = folder / "model.onnx"
    result = export_onnx(model, images[:1], onnx_path)
    check = verify_onnx(onnx_path, model, verify_set)
    record["onnx"] = {"path": onnx_path.name, "exporter": result.exporter, "opset": result.opset,
                      "warnings": list(result.warnings), "size_bytes": onnx_path.stat().st_size,
                      "verification": check.to_dict()}
    say_info(f"export: {onnx_path.name} ({result.exporter}, opset {result.opset}) matches PyTorch: "
             f"max |diff| {check.max_abs_diff:.1e}, top-1 agreement {check.top1_agreement:.1%} on {check.n} images")
    int8_path = None
    if "int8" in formats:
        int8_path = folder / "model.int8.onnx"
        reader = TensorCalibrationReader(images[:CALIBRATION_IMAGES], "input", batch_size=32)
        q = quantize_int8(onnx_path, int8_path, reader, method=int8_method, target=target)
        agreement = compare_sessions(onnx_path, int8_path, verify_set)
        record["int8"] = {**q.to_dict(), "path": int8_path.name, "agreement_with_fp32": agreement.to_dict()}
        say_info(f"export: {int8_path.name} ({q.activation_type} activations, {q.method}, target {target}): "
                 f"top-1 agreement with FP32 {agreement.top1_agreement:.1%}, {q.size_bytes / 2**10:.0f} KiB")
        if target == "tensorrt" and saturating_u8s8():
            record["int8"]["agreement_note"] = SATURATION_NOTE
            say_warn(f"export: {SATURATION_NOTE}")
    if "trt" in formats:
        source = int8_path if int8_path is not None and target == "tensorrt" else onnx_path
        try:
            info = build_engine(source, folder / "model.engine", fp16=source == onnx_path)
            record["trt"] = {**info.to_dict(), "path": "model.engine"}
            say_info(f"export: model.engine ({info.precision}, TensorRT {info.tensorrt_version})")
        except TensorRTUnavailable as err:
            record["trt"] = {"skipped": str(err)}
            say_warn(f"--export trt skipped: {err}")
    write_text(folder / "export.json", json.dumps(record, indent=1, default=str))
    return record


def export_all(folder: Path, student: nn.Module, data, config, say) -> dict[str, Any]:
    """The tail of ``compress prune --export``: calibration images are the held-out + importance ones."""
    images = _calibration_tensor(data)
    return export_formats(student, folder, config.export, images, int8_method=config.int8_method,
                          target=config.target, say_info=say.info, say_warn=say.warn)


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
    loader_arg: str  # a compress folder, or a spec.json for compress.loading:load_for_bench
    sizes: dict[str, int] = field(default_factory=dict)
    onnx: Path | None = None
    int8: Path | None = None
    engine: Path | None = None
    top1: float | None = None
    agreement: float | None = None


def spec_file(folder: Path, name: str, spec: ModelSpec, trust: bool = False) -> Path:
    path = folder / f"{name}.spec.json"
    write_text(path, json.dumps({**spec.to_dict(), **({"trust": True} if trust else {})}))
    return path


def benchmark(sides: list[Side], out_dir: Path, *, input_shape, backends=("torch", "onnxruntime"),
              batches=(1, 32), threads=None, iters=50, warmup=10, min_seconds=2.0, progress=True,
              measure_memory=True, show: bool = True, latency_target: dict | None = None,
              device: str = "cpu", task: dict | None = None) -> dict[str, Any]:
    """Export what the onnxruntime backend needs, time everything interleaved, write the report.

    ``device`` is where the torch backend runs (``cpu``, ``cuda``, ``cuda:N``); ``task``: the names of the
    accuracy columns (``compress.tasks.Task.labels``), recorded as ``report["task"]``."""
    from compress.export.bench import BenchModel, run_bench
    from compress.export.onnx import export_onnx
    from compress.export.report import render_table, write_report

    out_dir.mkdir(parents=True, exist_ok=True)
    example = torch.randn(1, *input_shape)
    models = []
    for side in sides:
        if "onnxruntime" in backends and side.onnx is None:
            (out_dir / "bench").mkdir(exist_ok=True)
            side.onnx = out_dir / "bench" / f"{side.name}.onnx"
            export_onnx(side.module, example, side.onnx)
        models.append(BenchModel(
            name=side.name, module=side.module.cpu().eval(), onnx_path=side.onnx, int8_path=side.int8,
            engine_path=side.engine, loader="compress.loading:load_for_bench", loader_args=(str(side.loader_arg),),
            params=sum(p.numel() for p in side.module.parameters()), macs=_macs(side.module, input_shape),
            sizes=dict(side.sizes), top1=side.top1, agreement=side.agreement))
    report = run_bench(models, backends=backends, batches=batches, input_shape=input_shape, threads=threads,
                       iters=iters, warmup=warmup, min_seconds=min_seconds, progress=progress,
                       measure_memory=measure_memory, device=device)
    if latency_target:
        report["latency_target"] = latency_target
    if task:
        report["task"] = task
    write_report(report, out_dir)
    if show:
        render_table(report)
    return report


def _macs(module: nn.Module, input_shape) -> int:
    from compress.profile import count_macs

    return count_macs(module, tuple(input_shape))


def bench_pair(folder: Path, loaded, student: nn.Module, summary: dict, data, config, say) -> dict[str, Any]:
    """The tail of ``compress prune --bench``: original vs compressed, written into the folder."""
    from compress.devices import resolve_device
    from compress.pipeline import written_figures
    from compress.tasks import metric_before, task_named

    shape = tuple(loaded.spec.input_size)
    top1, agreement = written_figures(summary)
    bench_dir = folder / "bench"
    bench_dir.mkdir(exist_ok=True)
    original = Side("original", loaded.model, str(spec_file(bench_dir, "original", loaded.spec, config.load.get("trust", False))),
                    sizes={"checkpoint": loaded.size_bytes},
                    top1=metric_before(summary), agreement=1.0)
    compressed = Side("compressed", student, str(folder), sizes={"checkpoint": (folder / "model.safetensors").stat().st_size},
                      top1=top1, agreement=agreement)
    for name, attr in (("model.onnx", "onnx"), ("model.int8.onnx", "int8"), ("model.engine", "engine")):
        if (folder / name).exists():
            setattr(compressed, attr, folder / name)
    device = str(resolve_device(config.device))
    say.info(f"bench: timing original and compressed, interleaved (torch on {device} and onnxruntime, batch 1 and 32)")
    report = benchmark([original, compressed], folder, input_shape=shape, progress=config.progress,
                       latency_target=summary.get("latency"), device=device, task=task_named(summary).labels())
    return {"report": "report.json", "comparisons": report.get("comparisons", [])}
