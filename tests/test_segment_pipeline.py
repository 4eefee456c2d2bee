"""Segmentation end to end on the embedded demo (tiny training here; the quality figures are measured by
benchmarks/seg_demo.py), and a torchvision segmenter through prune -> proof -> reload -> ONNX (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.cli_helpers import run_cli


@pytest.fixture(scope="module")
def seg_assets(tmp_path_factory):
    from compress.demo.seg import make_seg_demo_assets

    return make_seg_demo_assets(tmp_path_factory.mktemp("seg"), train_seconds=4, n_calib=160, n_eval=24)


def test_scenes_masks_match_their_digits(seg_assets):
    from PIL import Image

    masks = sorted((seg_assets.eval_dir / "masks").glob("*.png"))
    assert len(masks) == 24
    with Image.open(masks[0]) as m:
        arr = np.asarray(m)
    assert arr.shape == (32, 32) and arr.max() <= 10 and (arr == 0).any() and (arr > 0).any()


def test_prune_segmenter_reports_miou_recovers_exports_and_benches(seg_assets, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_cli(["prune", seg_assets.checkpoint, "--arch", "segdigits", "--calib", seg_assets.calib_dir,
                                 "--eval", seg_assets.eval_dir, "--ratio", "0.5", "--recover-steps", "12",
                                 "--export", "onnx", "--no-progress", "--json", "-o", out], capsys)
    assert code == 0, err
    s = json.loads(stdout)
    assert "task: segment (auto" in err
    assert s["task"] == "segment" and s["metric"] == "miou" and "top1_before" not in s
    assert 0 <= s["miou_before"] <= 1 and 0 <= s["miou_recovered"] <= 1 and 0 <= s["agreement_recovered"] <= 1
    assert s["macs_after"] < 0.5 * s["macs_before"]
    assert s["distill"]["lr"] == 0.05  # the segment task's default
    assert s["recover_checks"][-1]["agreement"] >= s["recover_checks"][0]["agreement"] - 0.2
    onnx = json.loads((out / "export.json").read_text())["onnx"]["verification"]
    assert onnx["passed"] and onnx["top1_agreement"] > 0.99
    code, stdout, err = run_cli(["bench", out, "--backend", "onnxruntime", "--batch", "1", "--iters", "3", "--warmup", "1",
                                 "--min-seconds", "0", "--no-memory", "--eval", seg_assets.eval_dir], capsys)
    assert code == 0, err
    assert "mIoU on" in err
    md = (out / "report.md").read_text()
    assert "| mIoU | mIoU vs original |" in md and "top-1" not in md
    report = json.loads((out / "report.json").read_text())
    assert report["task"]["task"] == "segment"
    assert report["models"][0]["top1"] == pytest.approx(s["miou_before"], abs=1e-4)


def test_prune_table_names_miou(seg_assets, tmp_path, capsys):
    code, stdout, err = run_cli(["prune", seg_assets.checkpoint, "--arch", "segdigits", "--calib", seg_assets.calib_dir,
                                 "--eval", seg_assets.eval_dir, "--ratio", "0.3", "--no-recover", "--no-progress",
                                 "-o", tmp_path / "out"], capsys)
    assert code == 0, err
    assert "mIoU (eval)" in stdout and "mIoU vs original (held out)" in stdout and "top-1" not in stdout


def test_task_flag_that_does_not_fit_fails_before_any_work(seg_assets, tmp_path, capsys):
    code, _, err = run_cli(["prune", seg_assets.checkpoint, "--arch", "segdigits", "--calib", seg_assets.calib_dir,
                            "--task", "classify", "--no-progress", "-o", tmp_path / "out"], capsys)
    assert code == 2 and "--task classify does not fit" in err and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_torchvision_lraspp_prunes_proves_reloads_and_exports(tmp_path, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.seg_zoo import random_checkpoint, random_images

    import compress
    from compress.export.verify import verify_onnx

    random_checkpoint("lraspp_mobilenet_v3_large", tmp_path / "ckpt.pt", 64)
    images = random_images(tmp_path / "imgs", 8, 64)
    out = tmp_path / "out"
    code, stdout, err = run_cli(["prune", tmp_path / "ckpt.pt", "--arch", "torchvision:lraspp_mobilenet_v3_large",
                                 "--arch-kwargs", "weights_backbone=none", "--calib", images, "--input-size", "64",
                                 "--ratio", "0.4", "--no-recover", "--export", "onnx", "--no-progress", "--json",
                                 "-o", out], capsys)
    assert code == 0, err
    s = json.loads(stdout)
    assert s["task"] == "segment" and s["macs_after"] <= 0.75 * s["macs_before"]
    assert "proved against the zeroed original" in err
    assert json.loads((out / "export.json").read_text())["onnx"]["verification"]["passed"]
    reloaded = compress.load(str(out)).model
    assert verify_onnx(out / "model.onnx", reloaded, torch.randn(3, 3, 64, 64)).passed


def test_sweep_shows_miou(seg_assets, tmp_path, capsys):
    code, stdout, err = run_cli(["sweep", seg_assets.checkpoint, "--arch", "segdigits", "--calib", seg_assets.calib_dir,
                                 "--eval", seg_assets.eval_dir, "--ratios", "0.3", "--no-recover", "--device", "cpu",
                                 "-o", tmp_path / "sweep"], capsys)
    assert code == 0, err
    header = next(line for line in stdout.splitlines() if "ratio" in line)
    assert "mIoU" in header and "mIoU vs original" in header and "top-1" not in stdout
    assert (tmp_path / "sweep" / "sweep.png").is_file()
