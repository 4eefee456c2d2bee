"""BatchNorm statistics re-estimated on unlabeled images (compress.recover.batchnorm) and `prune --no-recover`."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from compress.recover.batchnorm import recalibrate_batchnorm
from compress.errors import UsageError
from tests.cli_helpers import run_cli


def net() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Dropout(0.5),
                          nn.Conv2d(6, 4, 3, padding=1), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    for m in model.modules():  # stale statistics, as after pruning
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-3, 3), m.running_var.uniform_(5, 9)
    return model.eval()


def exact_stats(model: nn.Sequential, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel mean and unbiased variance each BatchNorm sees, every other layer in eval mode."""
    out = []
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.BatchNorm2d):
                out.append((x.mean((0, 2, 3)), x.transpose(0, 1).flatten(1).var(1, unbiased=True)))
                x = (x - out[-1][0].view(1, -1, 1, 1)) / torch.sqrt(x.var((0, 2, 3), unbiased=False) + m.eps).view(1, -1, 1, 1)
                x = x * m.weight.view(1, -1, 1, 1) + m.bias.view(1, -1, 1, 1)
            else:
                x = m.eval()(x)
    return out


def test_statistics_are_the_exact_ones_of_the_images_and_nothing_else_changes():
    model = net()
    x = torch.randn(40, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    weights = {k: v.clone() for k, v in model.named_parameters()}
    assert recalibrate_batchnorm(model, x, batch_size=40) == 2
    norms = [m for m in model if isinstance(m, nn.BatchNorm2d)]
    for m, (mean, var) in zip(norms, exact_stats(model, x)):  # dropout stayed off during the pass
        torch.testing.assert_close(m.running_mean, mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(m.running_var, var, rtol=1e-4, atol=1e-5)
        assert m.momentum == 0.1
    assert not any(m.training for m in model.modules())
    assert all(torch.equal(v, weights[k]) for k, v in model.named_parameters())


def test_several_batches_average_and_max_images_limits_a_loader():
    x = torch.randn(48, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    whole, batched = net(), net()
    recalibrate_batchnorm(whole, x[:32], batch_size=32)
    loader = [(x[i:i + 16], torch.arange(i, i + 16)) for i in range(0, 48, 16)]  # (batch, index) tuples
    recalibrate_batchnorm(batched.train(), loader, max_images=32)
    assert batched.training and all(m.training for m in batched.modules())  # modes restored
    first = batched[1]
    torch.testing.assert_close(first.running_mean, whole[1].running_mean, rtol=1e-4, atol=1e-5)
    # the mean of two batch variances is close to, not equal to, the variance of the 32 images
    torch.testing.assert_close(first.running_var, whole[1].running_var, rtol=0.1, atol=0.05)


def test_a_failed_pass_puts_the_old_statistics_back():
    model = net()
    before = [m.running_mean.clone() for m in model if isinstance(m, nn.BatchNorm2d)]

    def images():
        yield torch.randn(8, 3, 8, 8)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        recalibrate_batchnorm(model, images(), batch_size=8)
    after = [m.running_mean for m in model if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(a, b) for a, b in zip(after, before))
    assert all(m.momentum == 0.1 and not m.training for m in model if isinstance(m, nn.BatchNorm2d))
    with pytest.raises(UsageError, match="no images"):
        recalibrate_batchnorm(model, torch.empty(0, 3, 8, 8))
    assert recalibrate_batchnorm(nn.Sequential(nn.Conv2d(3, 2, 1)), torch.randn(2, 3, 4, 4)) == 0


def test_prune_without_recovery_writes_refitted_statistics_unless_told_not_to(tiny_assets, tmp_path, capsys):
    from compress.models.loading import load_model

    runs = {}  # at 0.7 re-estimation keeps held-out agreement on this random model (at 0.5 it lowers it, and is
    # refused: tests/test_never_lose_files.py)
    for flag in ("--recalibrate-bn", "--no-recalibrate-bn"):
        out = tmp_path / flag
        code, stdout, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib",
                                     tiny_assets / "calib", "--ratio", "0.7", "--eval", tiny_assets / "eval",
                                     "--no-recover", flag, "--round-to", "1", "--no-progress", "-o", out, "--json",
                                     "--no-repair"],
                                    capsys)
        assert code == 0, err
        runs[flag] = (json.loads(stdout), load_model(out).model)
    summary, refitted = runs["--recalibrate-bn"]
    assert summary["bn_recalibrated"] > 0 and summary["bn_recalibrate_images"] == summary["calibration"]["distill"]
    for key in ("agreement_pruned", "agreement_recalibrated", "kl_recalibrated", "top1_pruned", "top1_recalibrated"):
        assert key in summary, key
    assert "recover_steps" not in summary
    plain_summary, plain = runs["--no-recalibrate-bn"]
    assert "bn_recalibrated" not in plain_summary and plain_summary["top1_pruned"] == summary["top1_pruned"]
    stale = [m.running_mean for m in plain.modules() if isinstance(m, nn.BatchNorm2d)]
    fresh = [m.running_mean for m in refitted.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(fresh) == summary["bn_recalibrated"] and not all(torch.equal(a, b) for a, b in zip(stale, fresh))
    assert all(torch.equal(a, b) for a, b in zip(refitted.parameters(), plain.parameters()))


def test_recovery_starts_from_the_refitted_statistics(tiny_assets, tmp_path, capsys, monkeypatch):
    """Recovery goes on from the re-estimated model, so a recovery none of whose checks is better (forced here:
    the selection refuses every check) writes that model, not the stale one-shot one; the one-shot and the
    re-estimated figures stay in the summary beside the recovered ones."""
    from compress.models.loading import load_model
    from compress.recover.selection import Selection

    common = ["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib", "--ratio", "0.7",
              "--eval", tiny_assets / "eval", "--round-to", "1", "--no-progress", "--json", "--no-repair"]
    code, stdout, err = run_cli([*common, "--no-recover", "-o", tmp_path / "refit"], capsys)
    assert code == 0, err
    refit_summary, refit = json.loads(stdout), load_model(tmp_path / "refit").model
    monkeypatch.setattr(Selection, "offer", lambda self, *a, **k: None)
    code, stdout, err = run_cli([*common, "--recover-steps", "4", "-o", tmp_path / "rec"], capsys)
    assert code == 0, err
    summary, written = json.loads(stdout), load_model(tmp_path / "rec").model
    assert summary["bn_recalibrated"] == refit_summary["bn_recalibrated"] > 0
    assert summary["agreement_pruned"] == refit_summary["agreement_pruned"]  # the one-shot cut's
    assert summary["top1_recalibrated"] == refit_summary["top1_recalibrated"]
    assert summary["recover_checks"][0]["agreement"] == summary["agreement_recalibrated"]  # where recovery started
    assert summary["recover_best_step"] == 0 and summary["top1_recovered"] == refit_summary["top1_recalibrated"]
    assert all(torch.equal(a, b) for a, b in zip(written.state_dict().values(), refit.state_dict().values()))
