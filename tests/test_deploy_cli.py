"""`compress export`, `compress bench`, `compress sweep` and `prune --export --bench` on a tiny model."""

from __future__ import annotations

import json

import onnx
import pytest
import torch

from tests.cli_helpers import run_cli


@pytest.fixture(scope="module")
def pruned(tiny_assets, tmp_path_factory, capsys_module=None):
    from compress.api import prune

    out = tmp_path_factory.mktemp("deploy") / "pruned"
    prune(str(tiny_assets / "ckpt.pt"), str(tiny_assets / "calib"), arch="digits", ratio=0.5, recover=False,
          out=str(out), round_to=8, progress=False, quiet=True)
    return out


def test_export_writes_verified_onnx_int8_and_explains_trt(pruned, capsys):
    code, stdout, err = run_cli(["export", pruned, "--format", "onnx,int8,trt", "--json"], capsys)
    assert code == 0, err
    record = json.loads(stdout)
    assert (pruned / "model.onnx").is_file() and (pruned / "model.int8.onnx").is_file()
    assert not list(pruned.glob("*.onnx.data"))
    assert record["onnx"]["verification"]["passed"] and record["onnx"]["verification"]["max_abs_diff"] <= 1e-4
    assert record["int8"]["activation_type"] == "uint8" and record["int8"]["agreement_with_fp32"]["n"] > 0
    int8 = onnx.load(str(pruned / "model.int8.onnx"))
    assert any(n.op_type == "QuantizeLinear" for n in int8.graph.node)
    from compress.export.tensorrt import tensorrt_available

    if not tensorrt_available()[0]:
        assert "skipped" in record["trt"] and "--export trt skipped" in err
    assert json.loads((pruned / "export.json").read_text())["onnx"]["path"] == "model.onnx"


def test_export_of_a_plain_checkpoint_needs_images_for_int8(tiny_assets, tmp_path, capsys):
    code, _, err = run_cli(["export", tiny_assets / "ckpt.pt", "--arch", "digits", "--format", "int8",
                            "-o", tmp_path / "x"], capsys)
    assert code == 2 and "--calib" in err
    code, _, err = run_cli(["export", tiny_assets / "ckpt.pt", "--arch", "digits", "--format", "onnx",
                            "-o", tmp_path / "y"], capsys)
    assert code == 0 and (tmp_path / "y" / "model.onnx").is_file() and "random inputs" in err


def test_bench_compares_a_pruned_folder_with_its_original(pruned, tmp_path, tiny_assets, capsys):
    out = tmp_path / "report"
    code, stdout, err = run_cli(["bench", pruned, "--backend", "torch,onnxruntime", "--batch", "1,4", "--iters", "5",
                                 "--warmup", "2", "--no-memory", "--eval", tiny_assets / "eval", "-o", out, "--json"], capsys)
    assert code == 0, err
    report = json.loads(stdout)
    assert {m["name"] for m in report["models"]} == {"original", "compressed"}
    rows = {(r["model"], r["backend"], r["batch"]) for r in report["rows"]}
    assert ("compressed", "onnxruntime", 4) in rows and ("original", "torch", 1) in rows
    assert all(c["mac_ratio"] > 1 for c in report["comparisons"])
    for name in ("report.json", "report.md", "report.png"):
        assert (out / name).stat().st_size > 0


def test_sweep_gives_one_row_per_ratio(tiny_assets, tmp_path, capsys):
    code, stdout, err = run_cli(["sweep", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                                 "--ratios", "0.3,0.6", "--no-recover", "--round-to", "1", "-o", tmp_path / "sw", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(stdout)["rows"]
    assert [r["ratio"] for r in rows] == [0.0, 0.3, 0.6]
    assert rows[2]["macs"] < rows[1]["macs"] < rows[0]["macs"]
    assert all(r["latency_ms"] > 0 for r in rows)
    assert (tmp_path / "sw" / "sweep.png").stat().st_size > 0


@pytest.mark.parametrize("saturates", [True, False])
def test_tensorrt_target_int8_check_is_flagged_on_cpus_that_saturate(pruned, tmp_path, monkeypatch, saturates):
    import torch

    import compress.export.quantize
    from compress.run.deploy import export_formats
    from compress.models.loading import load_model

    monkeypatch.setattr(compress.export.quantize, "saturating_u8s8", lambda *a, **k: saturates)
    warned: list[str] = []
    model = load_model(str(pruned)).model.eval()
    images = torch.randn(16, 3, 32, 32)
    record = export_formats(model, tmp_path, ("onnx", "int8"), images, target="tensorrt",
                            say_info=lambda _m: None, say_warn=warned.append)
    assert record.formats["int8"]["activation_type"] == "int8" and not record.formats["int8"]["reduce_range"]
    assert ("agreement_note" in record.formats["int8"]) == saturates
    assert any("understates what TensorRT gives" in w for w in warned) == saturates


def test_bench_and_sweep_device_errors_are_one_line(pruned, tiny_assets, tmp_path, capsys):
    code, _, err = run_cli(["bench", pruned, "--device", "gpu", "-o", tmp_path / "r"], capsys)
    assert code == 2 and err.strip() == "error: unknown device 'gpu' (use auto, cpu, cuda or cuda:N)"
    if not torch.cuda.is_available():
        code, _, err = run_cli(["bench", pruned, "--device", "cuda", "-o", tmp_path / "r"], capsys)
        assert code == 2 and "no CUDA GPU" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
    code, _, err = run_cli(["sweep", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                            "--device", "gpu", "-o", tmp_path / "sw"], capsys)
    assert code == 2 and err.strip() == "error: unknown device 'gpu' (use auto, cpu, cuda or cuda:N)"
    assert not (tmp_path / "sw").exists()


def test_report_names_the_torch_device_and_gpu_memory_where_measured():
    from compress.export.report import comparison_rows, latency_rows

    def row(model, device, gpu):
        return {"model": model, "backend": "torch", "precision": "fp32", "batch": 1, "device": device,
                "latency_ms": {"p50": 1.0, "p90": 1.1}, "throughput": 1000.0, "size_bytes": 10,
                "memory": {"peak_rss_bytes": 2**20, "model_rss_bytes": 2**19, "gpu_peak_bytes": gpu}}

    comparison = {"model": "b", "backend": "torch", "precision": "fp32", "batch": 1, "speedup": 2.0, "mac_ratio": 2.0,
                  "memory_change": -0.1, "model_memory_change": -0.2, "gpu_memory_change": -0.5, "size_change": -0.5}
    report = {"rows": [row("a", "cuda", 2**21), row("b", "cuda", 2**20)], "comparisons": [comparison]}
    cols, rows = latency_rows(report)
    assert cols[-2] == "GPU memory" and rows[0][1] == "torch cuda" and rows[0][-2] == "2.00 MiB"
    cols, rows = comparison_rows(report)
    assert cols[-2] == "GPU memory" and rows[0][1] == "torch cuda" and rows[0][-2] == "-50 % GPU memory"
    cpu = {"rows": [row("a", "cpu", None)], "comparisons": []}
    cols, rows = latency_rows(cpu)
    assert "GPU memory" not in cols and rows[0][1] == "torch"


def test_bench_accuracy_streams_an_eval_folder_too_big_to_hold(pruned, tmp_path, tiny_assets, capsys, monkeypatch):
    from compress import calibrate

    args = ["bench", pruned, "--backend", "torch", "--batch", "1", "--iters", "2", "--warmup", "1", "--min-seconds",
            "0", "--no-memory", "--device", "cpu", "--eval", tiny_assets / "eval", "--json"]
    code, stdout, err = run_cli([*args, "-o", tmp_path / "held"], capsys)
    assert code == 0, err
    held = [(m["top1"], m["agreement"]) for m in json.loads(stdout)["models"]]
    monkeypatch.setattr(calibrate, "preload_labelled", lambda *a, **k: None)  # as for a folder over the memory cap
    monkeypatch.setattr("compress.run.bench_sides.BATCH", 5)  # 12 images: batches of 5, 5 and 2
    code, stdout, err = run_cli([*args, "-o", tmp_path / "streamed"], capsys)
    assert code == 0, err
    assert [(m["top1"], m["agreement"]) for m in json.loads(stdout)["models"]] == held
    assert held[0][1] == 1.0 and 0.0 <= held[1][0] <= 1.0
