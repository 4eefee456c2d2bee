"""INT8 QDQ of a *pruned* CIFAR ResNet-20 (real checkpoint, real images) keeps top-1 within 1 point
of its FP32 ONNX on eval/. The pruned model is what `prune --no-recover` writes: cut, then its
BatchNorm statistics re-estimated on the calibration images."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.shared, pytest.mark.slow]
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def test_pruned_resnet20_int8_within_one_point(tmp_path):
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    from compress.calibrate import ImageDataset, LabelledFolder, preload, preload_labelled, scan_folder
    from compress.calibrate.preprocess import Preprocess
    from compress.calibrate.readers import TensorCalibrationReader
    from compress.prune.importance import ImportanceConfig, estimate, unit_scores
    from compress.models.loading import load_model
    from compress.prune.plan import PrunePolicy, select
    from compress.prune.surgery import apply_cuts
    from compress.recover.batchnorm import recalibrate_batchnorm
    from compress.export.onnx import export_onnx
    from compress.export.quantize import quantize_int8
    from compress.export.verify import make_session, run_session
    from tests.graph.helpers import groups_of

    loaded = load_model(SHARED / "models" / "resnet20-cifar10.th", arch="cifar_resnet20")
    pre = Preprocess.from_dict(loaded.spec.preprocess)
    calib = preload(ImageDataset(scan_folder(SHARED / "data" / "cifar10" / "calib", max_images=256).paths, pre))
    images, labels = preload_labelled(LabelledFolder(SHARED / "data" / "cifar10" / "eval", pre))
    groups = groups_of(loaded.model, calib[:2])
    scores = unit_scores(groups, estimate(loaded.model, groups, calib, ImportanceConfig(progress=False)))
    plan = select(groups, scores, PrunePolicy(ratio=0.3))
    pruned = apply_cuts(copy.deepcopy(loaded.model), plan.cuts).eval()
    recalibrate_batchnorm(pruned, calib)
    fp32 = export_onnx(pruned, calib[:1], tmp_path / "model.onnx").path
    int8 = quantize_int8(fp32, tmp_path / "model.int8.onnx", TensorCalibrationReader(calib, "input")).path
    acc = {}
    for name, path in (("fp32", fp32), ("int8", int8)):
        logits = run_session(make_session(path), images)
        acc[name] = float((np.argmax(logits, 1) == labels.numpy()).mean())
    print(f"pruned ResNet-20 (MACs {plan.macs_after / plan.macs_before:.2f}x): FP32 {acc['fp32']:.2%}, INT8 {acc['int8']:.2%}")
    assert abs(acc["fp32"] - acc["int8"]) <= 0.01, acc
