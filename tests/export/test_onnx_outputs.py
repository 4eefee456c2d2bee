"""ONNX export and parity for models whose output is a dict / tuple (segmentation heads)."""

from __future__ import annotations

import onnx
import pytest
import torch
import torch.nn as nn
from onnx import numpy_helper

from compress.export.errors import VerificationError
from compress.export.onnx import export_onnx
from compress.export.verify import verify_onnx


class TwoMaps(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.out = nn.Conv2d(8, 4, 1)
        self.aux = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        h = self.body(x)
        return {"out": self.out(h), "aux": self.aux(h) * 3.0}


def test_dict_outputs_export_verify_and_a_slightly_wrong_head_still_fails(tmp_path):
    torch.manual_seed(0)
    model = TwoMaps().eval()
    x = torch.randn(6, 3, 8, 8)
    path = export_onnx(model, x[:1], tmp_path / "m.onnx").path
    ok = verify_onnx(path, model, x)
    assert ok.passed and ok.top1_agreement == 1.0 and ok.noise_floor is None  # per-pixel top-1 of "out"

    proto = onnx.load(str(path))
    # one head's weight (4x8x1x1): one element nudged by 0.05, far above float32 rounding
    weights = [t for t in proto.graph.initializer if list(t.dims) == [4, 8, 1, 1]]
    assert len(weights) == 2
    arr = numpy_helper.to_array(weights[1]).copy()
    arr[0, 0, 0, 0] += 0.05
    weights[1].CopyFrom(numpy_helper.from_array(arr, weights[1].name))
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, str(bad))
    result = verify_onnx(bad, model, x, raise_on_fail=False)
    assert not result.passed and result.noise_floor is not None and result.noise_floor < 1e-5
    with pytest.raises(VerificationError):
        verify_onnx(bad, model, x)
