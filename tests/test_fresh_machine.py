"""What a new user's machine does to the real CLI: a fresh home directory, libraries that print on first
use, and a working directory that must not gain a file.

Every command that takes ``--json`` runs as its own process (``python -m compress``) with ``HOME`` and
``XDG_CONFIG_HOME`` pointing at empty folders, on a model whose code prints on stdout at import and from
the file descriptor itself (as a library's first-run banner or C code does); stdout must parse as one JSON
object. Ultralytics, whose first import in a fresh home prints "Creating new Ultralytics Settings ..." on
stdout, runs the same way. The working directory is an empty folder that must stay empty (onnxruntime's
shape inference used to leave ``<uuid>.data`` files there when it failed on a segmenter's upsampling).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

BANNER = '''
import os
print("banner: a library's first-run note")
os.write(1, b"banner: written to file descriptor 1\\n")
import torch.nn as nn


def net(num_classes=10):
    print("banner: the factory prints too")
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, num_classes))
'''


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fresh")
    (root / "banner.py").write_text(BANNER)
    sys.path.insert(0, str(root))
    try:
        import banner

        torch.manual_seed(0)
        torch.save(banner.net().state_dict(), root / "net.pt")
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("banner", None)
    from compress.archs.segdigits import segdigitnet

    torch.save(segdigitnet().state_dict(), root / "seg.pt")
    rng = np.random.default_rng(0)
    (root / "calib").mkdir()
    for i in range(24):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / "calib" / f"{i:02d}.png")
    (root / "cwd").mkdir()
    return root


def run_fresh(root: Path, *args) -> dict:
    """``python -m compress ARGS --json`` in an empty working directory with a new, empty home: the parsed
    stdout (which must be one JSON object and nothing else)."""
    home = root / f"home-{len(list(root.glob('home-*')))}"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOLO_") and k != "COMPRESS_DEBUG"}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    proc = subprocess.run([sys.executable, "-m", "compress", *map(str, args), "--json"], cwd=root / "cwd", env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        raise AssertionError(f"stdout is not one JSON object ({err}): {proc.stdout[:400]!r}") from None


@pytest.mark.slow
def test_every_json_command_prints_json_alone_on_a_fresh_machine(world):
    arch = ("--arch", f"{world / 'banner.py'}:net", "--input-size", "32")
    inspected = run_fresh(world, "inspect", world / "net.pt", *arch)
    assert inspected["macs"] > 0
    pruned = run_fresh(world, "prune", world / "net.pt", *arch, "--calib", world / "calib", "--no-recover",
                       "--round-to", "1", "--no-progress", "-o", world / "pruned")
    assert pruned["macs_after"] < pruned["macs_before"]
    # the folder names banner.py as its architecture: rebuilding it runs that file, so it needs --trust
    exported = run_fresh(world, "export", world / "pruned", "--trust", "--format", "onnx,int8", "-o", world / "exported")
    assert exported["onnx"]["verification"]["passed"] and exported["int8"]["quantize_nodes"] > 0
    benched = run_fresh(world, "bench", world / "pruned", "--trust", "--backend", "onnxruntime", "--batch", "1", "--iters", "3",
                        "--warmup", "1", "--min-seconds", "0", "--no-memory", "-o", world / "report")
    assert benched["rows"]
    swept = run_fresh(world, "sweep", world / "net.pt", *arch, "--calib", world / "calib", "--ratios", "0.5",
                      "--no-recover", "--round-to", "1", "-o", world / "sweep")
    assert any(r["ratio"] == 0.5 for r in swept["rows"])
    # a segmenter's INT8 export: onnxruntime's symbolic shape inference fails on its upsampling (and used to
    # leave its temporary files in the working directory); the pre-processing falls back to ONNX's inference
    seg = run_fresh(world, "export", world / "seg.pt", "--arch", "segdigits", "--format", "onnx,int8",
                    "--calib", world / "calib", "-o", world / "seg-export")
    assert seg["int8"]["quantize_nodes"] > 0
    assert sorted(os.listdir(world / "cwd")) == []  # no command wrote into the working directory


@pytest.mark.slow
def test_yolo_prune_json_on_a_fresh_home(world, tmp_path):
    pytest.importorskip("ultralytics", reason="YOLO needs the compress[yolo] extra (pip install ultralytics)")
    from compress.detection.yolo import build

    torch.manual_seed(0)
    torch.save(build("yolov8n.yaml").state_dict(), tmp_path / "yolov8n.pt")
    summary = run_fresh(world, "prune", tmp_path / "yolov8n.pt", "--arch", "compress.detection.yolo:build",
                        "--arch-kwargs", "cfg=yolov8n.yaml", "--input-size", "64", "--calib", world / "calib",
                        "--no-recover", "--no-progress", "-o", tmp_path / "out")
    assert summary["task"] == "detect" and summary["macs_after"] < summary["macs_before"]
    assert sorted(os.listdir(world / "cwd")) == []
