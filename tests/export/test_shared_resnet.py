"""ResNet-20 (real CIFAR-10 checkpoint and images from ../shared): ONNX parity and INT8 accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
CKPT = SHARED / "models" / "resnet20-cifar10.th"
CALIB = SHARED / "data" / "cifar10" / "calib"
EVAL = SHARED / "data" / "cifar10" / "eval"
MEAN = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
STD = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]

pytestmark = [pytest.mark.shared, pytest.mark.slow,
              pytest.mark.skipif(not (CKPT.is_file() and CALIB.is_dir() and EVAL.is_dir()),
                                 reason=f"shared data not found at {SHARED.resolve()}")]


def decode(paths) -> np.ndarray:
    from PIL import Image

    return np.stack([(np.asarray(Image.open(p).convert("RGB"), np.float32).transpose(2, 0, 1) / 255 - MEAN) / STD
                     for p in paths]).astype(np.float32)


@pytest.fixture(scope="module")
def resnet20():
    from compress.archs.cifar_resnet import resnet20

    state = torch.load(CKPT, map_location="cpu", weights_only=False)["state_dict"]
    model = resnet20()
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, resnet20):
    from compress.export.onnx import export_onnx

    return export_onnx(resnet20, torch.zeros(1, 3, 32, 32), tmp_path_factory.mktemp("r20") / "resnet20.onnx")


def test_resnet20_onnx_matches_pytorch(exported, resnet20):
    from compress.export.verify import verify_onnx

    images = torch.from_numpy(decode(sorted(CALIB.glob("*.jpg"))[:64]))
    check = verify_onnx(exported.path, resnet20, images, atol=1e-4)
    assert exported.exporter == "dynamo"
    assert check.passed and check.n == 64 and check.max_abs_diff <= 1e-4, check
    assert check.top1_agreement == 1.0


def test_resnet20_int8_keeps_accuracy(tmp_path, exported):
    from compress.calibrate.readers import TensorCalibrationReader
    from compress.export.quantize import quantize_int8
    from compress.export.verify import make_session, run_session

    calib = decode(sorted(CALIB.glob("*.jpg"))[:256])
    q = quantize_int8(exported.path, tmp_path / "resnet20-int8.onnx", TensorCalibrationReader(calib, "input"),
                      target="cpu")
    classes = sorted(p.name for p in EVAL.iterdir() if p.is_dir())
    files = [(f, i) for i, c in enumerate(classes) for f in sorted((EVAL / c).glob("*.jpg"))]
    x = decode([f for f, _ in files])
    y = np.array([i for _, i in files])
    fp32 = np.mean(run_session(make_session(exported.path), x).argmax(1) == y)
    int8 = np.mean(run_session(make_session(q.path), x).argmax(1) == y)
    assert len(y) == 2000 and fp32 == pytest.approx(0.8135, abs=0.002)  # the README's figure
    assert int8 >= fp32 - 0.01, f"INT8 top-1 {int8:.4f} vs FP32 {fp32:.4f}"
    assert q.size_bytes < exported.path.stat().st_size * 0.5
