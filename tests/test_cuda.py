"""The CUDA paths, on a real GPU: importance, distillation (mixed precision, channels-last), the
whole `compress prune` on the GPU, and `compress bench` timing torch on it with GPU memory.

Skipped with the reason where torch sees no CUDA GPU (every CI machine of this project)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from compress.recover import DistillConfig, agreement, distill
from compress.prune.importance import ImportanceConfig, estimate
from tests.cli_helpers import run_cli
from tests.graph.helpers import groups_of
from tests.distill_data import FAST
from tests.toy_models import build

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)")]


def _on_cpu(model: torch.nn.Module) -> bool:
    return all(t.device.type == "cpu" for t in (*model.parameters(), *model.buffers()))


@pytest.mark.parametrize("name", ["taylor-sq", "taylor-abs"])
def test_importance_on_the_gpu_matches_the_cpu_and_leaves_the_model_where_it_was(name):
    model, _ = build("residual")
    images = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    groups = groups_of(model, images[:2])
    cpu = estimate(model, groups, images, ImportanceConfig(name=name, batch_size=8, progress=False, device="cpu"))
    gpu = estimate(model, groups, images, ImportanceConfig(name=name, batch_size=8, progress=False, device="cuda"))
    assert cpu.device == "cpu" and gpu.device == "cuda" and _on_cpu(model)
    measured = ~np.isnan(cpu.id_scores)
    assert measured.sum() > 0 and np.array_equal(measured, ~np.isnan(gpu.id_scores))
    scale = np.abs(cpu.id_scores[measured]).max()  # TF32 convolutions: relative, not bitwise, agreement
    np.testing.assert_allclose(gpu.id_scores[measured], cpu.id_scores[measured], rtol=2e-2, atol=2e-3 * scale)


@pytest.mark.parametrize("amp,precision", [("auto", None), ("fp16", "fp16"), ("off", "fp32")])
def test_distillation_on_the_gpu_learns_in_each_precision_and_returns_cpu_weights(pair, amp, precision):
    student, teacher, train, hold = pair
    res = distill(student, teacher, train, hold, DistillConfig(**FAST, amp=amp, channels_last="auto"),
                  device="cuda", progress=False)
    expected = precision or ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    assert res.stopped is None and res.device.startswith("cuda") and res.precision == expected
    losses = [h["loss"] for h in res.history if h["loss"] is not None]
    assert all(np.isfinite(losses)) and losses[-1] < 0.6 * losses[0]
    assert res.agreement_after >= res.agreement_before + 0.2
    assert _on_cpu(res.student) and _on_cpu(teacher) and _on_cpu(student)
    assert res.student.training == student.training and not teacher.training
    cpu_agreement, _ = agreement(res.student, teacher, hold)  # the returned weights, judged again in fp32 on the CPU
    assert cpu_agreement == pytest.approx(res.agreement_after, abs=0.05)


def test_prune_on_the_gpu_then_bench_times_torch_there_with_gpu_memory(tiny_assets, tmp_path, capsys):
    out = tmp_path / "pruned"
    code, stdout, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                                 "--ratio", "0.5", "--recover-steps", "20", "--device", "cuda", "-o", out,
                                 "--no-progress", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["importance_device"] == "cuda" and summary["recover_device"].startswith("cuda")
    # the recovered figure is the held-out check whose weights were kept, on the GPU as on the CPU
    checks = summary["recover_checks"]
    assert summary["recover_steps"] == 20 and checks[0]["step"] == 0 and checks[-1]["step"] == 20
    assert checks[0]["agreement"] == summary["agreement_pruned"]
    kept = next(c for c in checks if c["step"] == summary["recover_best_step"])
    assert kept["agreement"] == summary["agreement_recovered"] and 0.0 <= summary["agreement_recovered"] <= 1.0
    report_dir = tmp_path / "report"
    code, stdout, err = run_cli(["bench", out, "--backend", "torch,onnxruntime", "--batch", "1,8", "--iters", "5",
                                 "--warmup", "2", "--min-seconds", "0", "-o", report_dir, "--json"], capsys)
    assert code == 0, err
    report = json.loads(stdout)
    assert report["settings"]["device"] == "cuda" and report["environment"]["gpu"]
    torch_rows = [r for r in report["rows"] if r["backend"] == "torch"]
    assert len(torch_rows) == 4 and all(r["device"] == "cuda" for r in torch_rows)
    assert all(r["memory"]["gpu_peak_bytes"] > 0 for r in torch_rows)
    assert all(r["device"] == "cpu" for r in report["rows"] if r["backend"] == "onnxruntime")
    assert all(c["gpu_memory_change"] is not None for c in report["comparisons"] if c["backend"] == "torch")
    assert "torch cuda" in (report_dir / "report.md").read_text()


# ---------------------------------------------------------------- AOTInductor and torch.compile on the GPU
def test_an_aoti_package_compiled_for_cuda_runs_there_and_matches_pytorch(tmp_path):
    from compress.export.runtimes import get
    from compress.export.runtimes.aoti_rt import package

    aoti = get("aoti")
    if not aoti.available()[0]:
        pytest.skip(aoti.available()[1])
    model, _ = build("residual")
    x = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    path = package(model, (3, 8, 8), tmp_path / "m.cuda.pt2", device="cuda", max_batch=16)
    run, meta = aoti.compiled(path, None)
    assert meta["AOTI_DEVICE_KEY"].startswith("cuda") and _on_cpu(model)
    with torch.no_grad():
        ref = model.eval()(x).numpy()
    got = aoti.load(path, None)(x.numpy())  # numpy in and out: the input is moved to the package's device
    scale = max(1.0, float(np.abs(ref).max()))  # TF32 convolutions: relative, not bitwise, agreement
    np.testing.assert_allclose(got, ref, atol=2e-2 * scale)
    assert aoti.runner(path, model, x, 1, "cuda") is not None
    with pytest.raises(Exception, match="compiled for cuda, not cpu"):
        aoti.runner(path, model, x, 1, "cpu")


def test_bench_on_the_gpu_has_torch_compiled_and_aoti_rows_with_gpu_memory(tiny_assets, tmp_path, capsys):
    from compress.export.runtimes import get

    if not get("aoti").available()[0]:
        pytest.skip(get("aoti").available()[1])
    out = tmp_path / "pruned"
    code, _, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                            "--ratio", "0.5", "--no-recover", "-o", out, "--no-progress"], capsys)
    assert code == 0, err
    report_dir = tmp_path / "report"
    code, stdout, err = run_cli(["bench", out, "--backend", "torch,torch-compile,aoti", "--batch", "1,8", "--iters",
                                 "5", "--warmup", "3", "--min-seconds", "0", "--device", "cuda", "-o", report_dir,
                                 "--json"], capsys)
    assert code == 0, err
    report = json.loads(stdout)
    rows = {(r["model"], r["backend"], r["batch"]): r for r in report["rows"]}
    for backend in ("torch", "torch-compile", "aoti"):
        assert {(m, backend, b) for m in ("original", "compressed") for b in (1, 8)} <= set(rows)
    assert all(r["device"] == "cuda" and r["latency_ms"]["p50"] > 0 for r in rows.values())
    # each side's AOTInductor package was compiled for the GPU into bench/ (an exported CPU package cannot run there)
    assert (report_dir / "bench" / "original.cuda.aoti.pt2").is_file()
    assert (report_dir / "bench" / "compressed.cuda.aoti.pt2").is_file()
    assert all(rows[(m, "aoti", b)]["memory"]["gpu_peak_bytes"] > 0 for m in ("original", "compressed") for b in (1, 8))
    assert all(rows[(m, "torch-compile", 1)]["memory_note"] for m in ("original", "compressed"))
    assert all(rows[(m, "aoti", 1)]["agreement"] is not None for m in ("original", "compressed"))


def test_latency_timer_on_the_gpu_compiles_cuda_packages():
    from compress.export.layer_timing import make_timer
    from compress.export.runtimes import get

    if not get("aoti").available()[0]:
        pytest.skip(get("aoti").available()[1])
    model, _ = build("residual")
    timer = make_timer("aoti", batch=4, threads=1, device="cuda")
    assert timer.describe()["device"] == "cuda" and timer.describe()["gpu"]
    assert timer.time_model(model, timer.example((3, 8, 8)), seconds=0.1) > 0
