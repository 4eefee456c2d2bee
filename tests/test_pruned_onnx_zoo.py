"""Pruned models export to ONNX and run in onnxruntime exactly like PyTorch (max |diff| <= 1e-4,
identical top-1): the module object itself is exported, never rebuilt from the original config."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from compress.prune.plan import PrunePolicy, select
from compress.prune.surgery import apply_cuts
from compress.export.onnx import export_onnx
from compress.export.verify import verify_onnx
from tests.graph.helpers import groups_of
from tests.zoo import build_model

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["cifar_resnet20", "resnet18", "mobilenet_v3_small", "efficientnet_b0"])
def test_pruned_model_onnx_matches_torch(name, tmp_path):
    model, x = build_model(name)
    groups = groups_of(model, x)
    rng = random.Random(0)
    plan = select(groups, {u: rng.random() for u in groups.prunable_units}, PrunePolicy(ratio=0.4))
    pruned = apply_cuts(copy.deepcopy(model), plan.cuts).eval()
    result = export_onnx(pruned, x[:1], tmp_path / "model.onnx")
    inputs = torch.randn(8, *x.shape[1:], generator=torch.Generator().manual_seed(1))
    check = verify_onnx(result.path, pruned, inputs, atol=1e-4)
    assert check.passed and check.max_abs_diff <= check.threshold  # 1e-4 on unit-scale logits
    assert check.top1_agreement == 1.0
