"""AOTInductor packages (export.runtimes.aoti_rt) and torch.compile rows on the CPU: `compress export --format aoti`
verified against PyTorch, `compress bench --backend aoti`, shape checks, the latency timer, a missing compiler.

Each AOTInductor compile takes seconds: one package is compiled for the module (the CLI export) and shared."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from compress.export.bench import BenchModel, run_bench
from compress.export.errors import ExportError, RuntimeUnavailable
from compress.export.runtimes import get
from tests.cli_helpers import assert_refused_before_writing, run_cli
from tests.export.factories import tiny

pytestmark = pytest.mark.skipif(not get("aoti").available()[0], reason=get("aoti").available()[1])


@pytest.fixture(scope="module")
def exported(tiny_assets, tmp_path_factory):
    """A pruned digits model with `compress export --format onnx,aoti` run on it once (stdout's record)."""
    from compress.api import prune

    out = tmp_path_factory.mktemp("aoti") / "pruned"
    prune(str(tiny_assets / "ckpt.pt"), str(tiny_assets / "calib"), arch="digits", ratio=0.5, recover=False,
          out=str(out), round_to=8, progress=False, quiet=True)
    import contextlib
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):  # capsys is per test
        from compress.cli.main import main

        try:
            main(["export", str(out), "--format", "onnx,aoti", "--json"])
            code = 0
        except SystemExit as exit_:
            code = exit_.code
    assert code == 0, stderr.getvalue()
    return out, json.loads(stdout.getvalue())


def test_export_writes_a_package_verified_against_pytorch(exported):
    out, record = exported
    aoti = record["aoti"]
    assert (out / "model.aoti.pt2").is_file() and aoti["path"] == "model.aoti.pt2"
    assert aoti["verification"]["passed"] and aoti["verification"]["n"] == 40  # the calibration images
    assert aoti["verification"]["max_abs_diff"] <= aoti["verification"]["threshold"]
    assert aoti["device"] == "cpu" and aoti["dynamic_batch"] == [1, 1024] and aoti["compiler"]
    assert json.loads((out / "export.json").read_text())["aoti"]["size_bytes"] == (out / "model.aoti.pt2").stat().st_size


def test_the_package_runs_any_batch_without_the_model_code_and_refuses_other_shapes(exported):
    from compress.models.loading import load_model

    out, _ = exported
    model = load_model(str(out)).model.eval()
    run = get("aoti").load(out / "model.aoti.pt2", threads=1)
    for batch in (1, 7):
        x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            ref = model(x).numpy()
        np.testing.assert_allclose(run(x.numpy()), ref, atol=1e-4 * max(1.0, float(np.abs(ref).max())))
    with pytest.raises(ExportError, match=r"takes inputs \(1\.\.1024, 3, 32, 32\), got \(2, 3, 33, 32\)"):
        run(np.zeros((2, 3, 33, 32), np.float32))  # the compiled code would read it with the wrong strides
    with pytest.raises(ExportError, match="takes inputs"):
        run(np.zeros((1025, 3, 32, 32), np.float32))


def test_bench_cli_gives_aoti_rows_for_both_sides_with_their_own_agreement(exported, tmp_path, capsys):
    out, _ = exported
    report_dir = tmp_path / "report"
    code, stdout, err = run_cli(["bench", out, "--backend", "onnxruntime,aoti", "--batch", "1,4", "--iters", "3",
                                 "--warmup", "1", "--min-seconds", "0", "--no-memory", "-o", report_dir, "--json"],
                                capsys)
    assert code == 0, err
    report = json.loads(stdout)
    rows = {(r["model"], r["backend"], r["batch"]): r for r in report["rows"]}
    assert {(m, "aoti", b) for m in ("original", "compressed") for b in (1, 4)} <= set(rows)
    assert all(r["device"] == "cpu" and r["latency_ms"]["p50"] > 0 for r in rows.values())
    # the compressed side runs the exported file; the original's package was compiled for the bench
    assert rows[("compressed", "aoti", 1)]["size_bytes"] == (out / "model.aoti.pt2").stat().st_size
    assert (report_dir / "bench" / "original.cpu.aoti.pt2").is_file()
    assert rows[("original", "aoti", 1)]["agreement"] == 1.0  # its package against itself in PyTorch
    assert rows[("compressed", "aoti", 1)]["agreement"] == rows[("compressed", "onnxruntime", 1)]["agreement"]
    assert any(c["backend"] == "aoti" and c["speedup"] for c in report["comparisons"])
    assert report["environment"]["aoti_cxx"] and "AOTInductor with" in (report_dir / "report.md").read_text()


def test_the_memory_probe_loads_the_package_in_a_fresh_process(exported):
    out, _ = exported
    from compress.models.loading import load_model

    model = load_model(str(out)).model.eval()
    report = run_bench([BenchModel("m", model, artifacts={"aoti": out / "model.aoti.pt2"})], backends=("aoti",),
                       batches=(2,), input_shape=(3, 32, 32), threads=1, warmup=1, iters=2, min_seconds=0,
                       progress=False)
    (row,) = report["rows"]
    assert row["memory"]["model_rss_bytes"] > 0 and row["memory"]["gpu_peak_bytes"] is None


def test_a_package_compiled_for_cpu_is_not_timed_on_another_device(exported):
    out, _ = exported
    with pytest.raises(ExportError, match="compiled for cpu, not cuda"):
        get("aoti").runner(out / "model.aoti.pt2", None, torch.zeros(1, 3, 32, 32), 1, "cuda")


def test_latency_timer_compiles_networks_to_packages():
    from compress.export.layer_timing import make_timer
    from compress.prune.latency.config import LatencyConfig

    assert LatencyConfig(backend="aoti").backend == "aoti"
    timer = make_timer("aoti", batch=2, threads=1)
    assert timer.backend == "aoti" and timer.describe()["aoti_cxx"] and timer.describe()["aoti_layers"] == "torch eager"
    from compress.export.layer_models import LayerSpec

    assert timer.time_layer(LayerSpec("conv", (8, 8, 8), 8, 8, (3, 3), (1, 1), (1, 1), (1, 1)), 8, 8) > 0
    assert timer.time_model(tiny(0), timer.example((3, 16, 16)), seconds=0.1) > 0


def test_torch_compile_rows_on_the_cpu():
    report = run_bench([BenchModel("m", tiny(0))], backends=("torch-compile",), batches=(2,), input_shape=(3, 16, 16),
                       threads=1, warmup=2, iters=3, min_seconds=0, progress=False)
    (row,) = report["rows"]
    assert row["backend"] == "torch-compile" and row["device"] == "cpu" and row["latency_ms"]["p50"] > 0
    assert row["memory"] is None and "not probed" in row["memory_note"]


@pytest.mark.parametrize("args", [["export", "{ckpt}", "--arch", "digits", "--format", "onnx,aoti"],
                                  ["bench", "{ckpt}", "{ckpt}", "--arch", "digits", "--backend", "aoti"],
                                  ["prune", "{ckpt}", "--arch", "digits", "--calib", "{calib}", "--target-speedup",
                                   "1.2", "--backend", "aoti"]])
def test_without_a_cpp_compiler_commands_say_so_in_one_line(args, tiny_assets, tmp_path, capsys):
    from torch._inductor import config

    with config.patch({"cpp.cxx": (None, "no-such-c++-compiler")}):
        ok, reason = get("aoti").available()
        assert not ok and "C++ compiler" in reason
        with pytest.raises(RuntimeUnavailable):
            get("aoti").require()
        assert not get("torch-compile").available()[0]
        assert_refused_before_writing(args, tiny_assets, tmp_path / "out", capsys, "C++ compiler")
