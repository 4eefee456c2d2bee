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
