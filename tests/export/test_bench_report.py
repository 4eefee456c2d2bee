from __future__ import annotations

import json

import pytest
import torch

from compress.export.bench import BenchModel, compare_rows, run_bench
from compress.export.errors import ExportError
from compress.export.onnx import export_onnx
from compress.export.report import fmt_change, fmt_speedup, render_table, sweep_plot, write_report
from tests.export.factories import tiny


@pytest.fixture(scope="module")
def bench_models(tmp_path_factory, images, tiny_model, tiny_onnx):
    """An 'original' (width 32) and a 'compressed' (width 8) tiny model, exported, with INT8 for the latter."""
    from compress.calibrate.readers import TensorCalibrationReader
    from compress.export.quantize import quantize_int8

    folder = tmp_path_factory.mktemp("bench")
    original, compressed = tiny(0, width=32), tiny_model
    o = export_onnx(original, images[:2], folder / "original.onnx").path
    c = tiny_onnx.path
    q = quantize_int8(c, folder / "compressed-int8.onnx", TensorCalibrationReader(images, "input")).path
    return [
        BenchModel("original", original, onnx_path=o, params=sum(p.numel() for p in original.parameters()),
                   macs=4_000_000, top1=0.80, loader="tests.export.factories:tiny", loader_args=(0, 32)),
        BenchModel("compressed", compressed, onnx_path=c, int8_path=q,
                   params=sum(p.numel() for p in compressed.parameters()), macs=1_000_000, top1=0.78,
                   agreement=0.95, int8_top1=0.77, int8_agreement=0.93),
    ]


@pytest.fixture(scope="module")
def report(bench_models):
    return run_bench(bench_models, backends=("torch", "onnxruntime", "tensorrt"), batches=(1, 4),
                     input_shape=(3, 16, 16), threads=1, warmup=2, iters=5, measure_memory=False, progress=False)


def test_bench_rows_and_comparisons(report, bench_models):
    rows = {(r["model"], r["backend"], r["precision"], r["batch"]) for r in report["rows"]}
    expected = {(m, "torch", "fp32", b) for m in ("original", "compressed") for b in (1, 4)}
    expected |= {(m, "onnxruntime", "fp32", b) for m in ("original", "compressed") for b in (1, 4)}
    expected |= {("compressed", "onnxruntime", "int8", b) for b in (1, 4)}
    assert rows == expected
    for r in report["rows"]:
        lat = r["latency_ms"]
        assert lat["iters"] == 5 and lat["batch"] == r["batch"] and 0 < lat["p50"] <= lat["p99"]
        assert r["throughput"] == pytest.approx(r["batch"] * 1000 / lat["p50"])
    assert [s["backend"] for s in report["skipped"]] == ["tensorrt"]  # no TensorRT here: listed with reason
    comps = report["comparisons"]
    assert len(comps) == len(expected) - 4  # every non-baseline row
    c = next(c for c in comps if c["model"] == "compressed" and c["backend"] == "onnxruntime"
             and c["precision"] == "int8" and c["batch"] == 4)
    base = next(r for r in report["rows"] if r["model"] == "original" and r["backend"] == "onnxruntime"
                and r["precision"] == "fp32" and r["batch"] == 4)
    row = next(r for r in report["rows"] if r["model"] == "compressed" and r["precision"] == "int8" and r["batch"] == 4)
    assert c["speedup"] == pytest.approx(base["latency_ms"]["p50"] / row["latency_ms"]["p50"])
    assert c["mac_ratio"] == pytest.approx(4.0)
    assert c["size_change"] == pytest.approx(row["size_bytes"] / base["size_bytes"] - 1) and c["size_change"] < 0
    env = report["environment"]
    assert env["torch"] == torch.__version__ and env["threads"] == 1 and env["cpu"]


def test_report_files_roundtrip_and_render(tmp_path, report):
    paths = write_report(report, tmp_path / "out")
    assert set(paths) == {"json", "md", "png"} and all(p.is_file() for p in paths.values())
    assert json.loads(paths["json"].read_text()) == json.loads(json.dumps(report))
    md = paths["md"].read_text()
    assert "| compressed | onnxruntime | int8 | 4 |" in md and "Compared with original" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths["png"].stat().st_size > 10_000
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json", "report.md", "report.png"]
    from rich.console import Console

    console = Console(record=True, width=160)
    render_table(report, console=console)
    text = console.export_text()
    assert "compressed" in text and ("faster" in text or "slower" in text) and "skipped tensorrt" in text


def test_bench_memory_rows(bench_models):
    report = run_bench(bench_models[:1], backends=("torch",), batches=(2,), input_shape=(3, 16, 16), threads=1,
                       warmup=1, iters=3, measure_memory=True, progress=False)
    mem = report["rows"][0]["memory"]
    assert mem and mem["peak_rss_bytes"] >= mem["baseline_rss_bytes"] > 0 and mem["batch"] == 2
    no_loader = run_bench(bench_models[1:], backends=("torch",), batches=(2,), input_shape=(3, 16, 16), threads=1,
                          warmup=1, iters=3, measure_memory=True, progress=False)
    assert no_loader["rows"][0]["memory"] is None and "loader" in no_loader["rows"][0]["memory_note"]


def test_bench_rejects_bad_input(bench_models):
    with pytest.raises(ExportError):
        run_bench([], input_shape=(3, 16, 16))
    with pytest.raises(ExportError):
        run_bench([bench_models[0], bench_models[0]], input_shape=(3, 16, 16))
    with pytest.raises(ExportError):
        run_bench(bench_models[:1], backends=("tflite",), input_shape=(3, 16, 16), measure_memory=False)


def test_compare_rows_memory_and_formatting(bench_models):
    def row(model, p50, peak, model_rss, size):
        return {"model": model, "backend": "onnxruntime", "precision": "fp32", "batch": 1,
                "latency_ms": {"p50": p50}, "memory": {"peak_rss_bytes": peak, "model_rss_bytes": model_rss},
                "size_bytes": size}

    comps = compare_rows([row("original", 10.0, 200, 100, 1000), row("compressed", 4.0, 150, 52, 480)], bench_models)
    assert len(comps) == 1
    c = comps[0]
    assert c["speedup"] == pytest.approx(2.5) and c["memory_change"] == pytest.approx(-0.25)
    assert c["model_memory_change"] == pytest.approx(-0.48) and c["size_change"] == pytest.approx(-0.52)
    assert fmt_speedup(2.1) == "2.10x faster" and fmt_speedup(0.5) == "2.00x slower" and fmt_speedup(None) == "-"
    assert fmt_change(-0.48, "memory") == "-48 % memory" and fmt_change(0.1, "size") == "+10 % size"


def test_sweep_plot(tmp_path):
    rows = [{"ratio": r, "macs": int(40e6 * (1 - r) ** 2), "latency_ms": 3.0 * (1 - r) + 0.5,
             "top1": 0.81 - r * r * 0.2, "agreement": 1.0 - r * 0.15} for r in (0.0, 0.25, 0.5, 0.75)]
    out = sweep_plot(rows, tmp_path / "sweep.png")
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 10_000
    with pytest.raises(ValueError):
        sweep_plot([{"ratio": 0.5, "macs": 1, "latency_ms": 1.0}], tmp_path / "x.png")


def test_render_keeps_brackets_and_rounds_zero(report):
    from rich.console import Console

    from compress.export.report import fmt_change

    console = Console(record=True, width=200)
    render_table(report, console=console)
    assert "pip install compress[tensorrt]" in console.export_text()  # not eaten as rich markup
    assert fmt_change(-0.004, "memory") == "±0 % memory"


def test_report_shows_the_latency_target_when_there_is_one():
    from compress.export.records import LatencyFit, LatencyRecord, LatencyTableUse, PredictionError
    from compress.export.report import latency_target_lines

    assert latency_target_lines(None) == []
    t = LatencyRecord(backend="onnxruntime", batch=32, threads=2, device="cpu", target_ms=10.5, target_speedup=2.0,
                      predicted_ms=10.4, measured_ms=11.0, original_ms=21.0, speedup=1.91, target_error=0.048,
                      importance_kept=0.687, prediction_error=PredictionError(mean=0.035, max=0.046, configs=3),
                      fit=LatencyFit(a=1.0, b_ms=0.1), attempts=(), width_probe={},
                      table=LatencyTableUse(path="t.json", entries=10, measured_now=0, reused=10)).to_json()
    text = "\n".join(latency_target_lines(t))
    assert "batch 32" in text and "10.500 ms" in text and "1.91x" in text and "68.7%" in text and "max 4.6%" in text


@pytest.mark.parametrize("busy, noted", [(0.9, True), (0.1, False), (None, False)])
def test_bench_notes_spinning_torch_threads_on_busy_cpus(bench_models, monkeypatch, busy, noted):
    from compress.export import bench as export_bench

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(export_bench, "others_busy", lambda: busy)
    report = run_bench(bench_models[:1], backends=("torch",), batches=(1,), input_shape=(3, 16, 16), threads=2,
                       warmup=1, iters=2, measure_memory=False, progress=False)
    assert any("spinning OpenMP threads" in n for n in report["notes"]) == noted
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    report = run_bench(bench_models[:1], backends=("torch",), batches=(1,), input_shape=(3, 16, 16), threads=2,
                       warmup=1, iters=2, measure_memory=False, progress=False)
    assert not any("spinning OpenMP threads" in n for n in report["notes"])
