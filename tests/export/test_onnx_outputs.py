"""ONNX export and parity for models whose output is a dict / tuple (segmentation heads)."""

from __future__ import annotations

import numpy as np
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


def test_int8_of_a_two_output_network_is_compared_on_every_output(tmp_path):
    """A detector's raw network has several outputs: the INT8-vs-FP32 comparison reads all of them (it
    refused such a model after recovery, losing the run), and a head that differs shows in the figures."""
    from compress.calibrate.readers import TensorCalibrationReader
    from compress.export.quantize import quantize_int8
    from compress.export.verify import compare_sessions

    torch.manual_seed(0)
    model = TwoMaps().eval()
    x = torch.randn(32, 3, 8, 8)
    fp32 = export_onnx(model, x[:1], tmp_path / "m.onnx").path
    int8 = tmp_path / "m.int8.onnx"
    quantize_int8(fp32, int8, TensorCalibrationReader(x, "input", batch_size=8))
    same = compare_sessions(fp32, fp32, x)
    assert same.max_abs_diff == 0.0 and same.top1_agreement == 1.0 and same.n == 32
    q = compare_sessions(fp32, int8, x)
    assert 0.0 < q.max_abs_diff < 1.0 and 0.5 < q.top1_agreement <= 1.0

    proto = onnx.load(str(fp32))  # the second head ("aux") scaled: only the all-output figures can see it
    weights = [t for t in proto.graph.initializer if list(t.dims) == [4, 8, 1, 1]]
    arr = numpy_helper.to_array(weights[1]) * 2.0
    weights[1].CopyFrom(numpy_helper.from_array(arr.astype(np.float32), weights[1].name))
    other = tmp_path / "other.onnx"
    onnx.save(proto, str(other))
    moved = compare_sessions(fp32, other, x)
    assert moved.max_abs_diff > 0.1
