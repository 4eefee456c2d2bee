"""`compress prune` end to end on a tiny model and image folder, through the real CLI entry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from compress.recover import cpu_bf16
from tests.cli_helpers import run_cli


def test_prune_writes_a_reloadable_folder_with_the_summary_contract(tiny_assets, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                                 "--ratio", "0.5", "--eval", tiny_assets / "eval", "--recover-steps", "6",
                                 "--round-to", "1", "--no-progress", "-o", out, "--json", "--no-repair"], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    for key in ("params_before", "params_after", "macs_before", "macs_after", "importance", "ratio",
                "protected_groups", "top1_before", "top1_pruned", "top1_recovered", "agreement_pruned",
                "agreement_recovered", "recover_seconds", "recover_steps", "agreement_train", "kl_train"):
        assert key in summary, key
    # the training-image check measures every training image of this tiny folder (fewer than the sample size)
    assert summary["agreement_train_images"] == summary["calibration"]["distill"] < 1000
    assert 0.0 <= summary["agreement_train"] <= 1.0
    assert summary["macs_after"] < summary["macs_before"] and summary["params_after"] < summary["params_before"]
    assert summary["importance"] == "taylor-sq" and summary["recover_steps"] == 6
    # an explicit budget has no time cap; a CPU trains in bf16 where it runs it natively, else float32
    assert summary["recover_planned_steps"] == 6 and summary["recover_max_minutes"] is None
    # the held-out checks (step 0 = the pruned model, then the checks) and the one whose weights were kept
    checks = summary["recover_checks"]
    assert checks[0]["step"] == 0 and checks[0]["agreement"] == summary["agreement_pruned"]
    assert checks[-1]["step"] == 6 and summary["recover_best_step"] in {c["step"] for c in checks}
    kept = next(c for c in checks if c["step"] == summary["recover_best_step"])
    assert kept["agreement"] == summary["agreement_recovered"] and kept["kl"] == summary["kl_recovered"]
    assert summary["recover_precision"] == ("bf16" if cpu_bf16() else "fp32")
    assert json.loads((out / "summary.json").read_text())["macs_after"] == summary["macs_after"]
    assert (out / "importance.json").is_file() and (out / "plan.json").is_file()
    # reloads without --arch, and inspect reports the pruned MACs
    code, stdout, err = run_cli(["inspect", out, "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["macs"] == summary["macs_after"]
    from compress.models.loading import load_model

    loaded = load_model(out)
    assert loaded.pruned and loaded.model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert not list(tmp_path.glob(".*partial*"))


def test_prune_never_overwrites_and_refuses_existing_output(tiny_assets, tmp_path, capsys):
    out = tmp_path / "exists"
    out.mkdir()
    code, _, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                            "--no-recover", "--no-progress", "-o", out], capsys)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    code, _, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                            "--no-recover", "--no-progress", "-o", tiny_assets / "ckpt.pt"], capsys)
    assert code == 2 and "overwrite the input" in err


def test_prune_target_macs_and_default_output_next_to_checkpoint(tiny_assets, tmp_path, capsys):
    ckpt = tmp_path / "ckpt.pt"  # a private copy: the default output must not land in the session-wide assets
    shutil.copyfile(tiny_assets / "ckpt.pt", ckpt)
    code, stdout, err = run_cli(["prune", ckpt, "--arch", "digits", "--calib", tiny_assets / "calib",
                                 "--target-macs", "0.6", "--no-recover", "--round-to", "1", "--prune-stem",
                                 "--no-progress", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert Path(summary["out"]) == tmp_path / "ckpt.pruned" and (tmp_path / "ckpt.pruned" / "summary.json").is_file()
    assert sorted(p.name for p in tiny_assets.iterdir()) == ["calib", "ckpt.pt", "eval"]
    assert summary["macs_after"] <= 0.6 * summary["macs_before"]


def test_prune_errors_are_one_line_with_exit_codes(tiny_assets, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", empty, "--no-progress",
                            "-o", tmp_path / "e"], capsys)
    assert code == 4 and "no usable image" in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1 and "Traceback" not in err
    code, _, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--calib", tiny_assets / "calib", "--no-progress",
                            "-o", tmp_path / "a"], capsys)
    assert code == 3 and "--arch" in err
    code, _, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                            "--importance", "taylor", "--no-progress", "-o", tmp_path / "t"], capsys)
    assert code == 2 and "--labels" in err
    assert not (tmp_path / "t").exists()
    code, _, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                            "--recover-minutes", "0", "--no-progress", "-o", tmp_path / "m"], capsys)
    assert code == 2 and "max_minutes must be positive" in err and not (tmp_path / "m").exists()
    code, _, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                            "--recover-ema", "1", "--no-progress", "-o", tmp_path / "ema"], capsys)
    assert code == 2 and "ema decay must be in [0, 1)" in err and not (tmp_path / "ema").exists()
    code, _, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                            "--recover-precision", "fp16", "--device", "cpu", "--no-progress", "-o", tmp_path / "p"],
                           capsys)
    assert code == 2 and "fp16" in err and "CUDA" in err and not (tmp_path / "p").exists()
    assert "importance:" not in err  # refused before any work


def test_prune_recover_precision_fp32_is_honoured(tiny_assets, tmp_path, capsys):
    code, stdout, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                                 "--ratio", "0.5", "--recover-steps", "2", "--recover-precision", "fp32",
                                 "--recover-ema", "0",
                                 "--round-to", "1", "--no-progress", "-o", tmp_path / "o", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["recover_precision"] == "fp32" and summary["distill"]["amp"] == "off"
    assert summary["distill"]["ema"] == 0.0


def test_recover_minutes_help_names_the_default_cap(capsys):
    from compress.recover import AUTO_MINUTES

    code, stdout, err = run_cli(["prune", "--help"], capsys)
    assert code == 0, err
    assert f"(default: {AUTO_MINUTES:g} for the" in " ".join(stdout.split())  # the help is wrapped
