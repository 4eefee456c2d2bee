"""`compress prune --devices 2`: two CPU processes (gloo) under torchrun give the single-process
importance and plan, rank 0 alone writes, and the output reloads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def _prune(tiny_assets, out, *extra):
    cmd = [sys.executable, "-m", "compress", "prune", str(tiny_assets / "ckpt.pt"), "--arch", "digits",
           "--calib", str(tiny_assets / "calib"), "--round-to", "1", "--no-progress", "-o", str(out), "--json", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout), proc.stderr


def test_two_processes_match_one(tiny_assets, tmp_path):
    single, _ = _prune(tiny_assets, tmp_path / "single", "--recover-steps", "8")
    multi, err = _prune(tiny_assets, tmp_path / "multi", "--recover-steps", "8", "--devices", "2")
    assert multi["processes"] == 2 and single["processes"] == 1
    a = json.loads((tmp_path / "single" / "importance.json").read_text())["units"]
    b = json.loads((tmp_path / "multi" / "importance.json").read_text())["units"]
    assert [u["unit"] for u in a] == [u["unit"] for u in b]
    for x, y in zip(a, b):
        assert y["score"] == pytest.approx(x["score"], rel=1e-9, abs=1e-18)
    assert json.loads((tmp_path / "single" / "plan.json").read_text())["cuts"] == \
        json.loads((tmp_path / "multi" / "plan.json").read_text())["cuts"]
    # distillation ran data-parallel (DDP) and improved agreement; one output folder, no leftovers
    assert multi["recover_steps"] == 8 and multi["agreement_recovered"] >= multi["agreement_pruned"]
    assert err.count("wrote ") <= 1 and not list(tmp_path.glob(".*partial*"))
    from compress.models.loading import load_model

    assert load_model(tmp_path / "multi").pruned
