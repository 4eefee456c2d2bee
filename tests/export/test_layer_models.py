"""Single-layer models a latency table times: same operator, shapes and attributes as the network's."""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn as nn

from compress.export.layer_models import example_input, onnx_layer, torch_layer
from compress.export.verify import make_session
from compress.layers.registry import layer_spec

LAYERS = {
    "conv": (nn.Conv2d(16, 32, 3, stride=2, padding=1), (1, 16, 12, 12), (8, 24)),
    "grouped": (nn.Conv2d(16, 32, 3, padding=1, groups=4), (1, 16, 8, 8), (8, 16)),
    "depthwise": (nn.Conv2d(16, 16, 3, padding=1, groups=16), (1, 16, 8, 8), (8, 8)),
    "same": (nn.Conv2d(8, 8, 5, padding="same", dilation=2), (1, 8, 9, 9), (8, 8)),
    "transposed": (nn.ConvTranspose2d(16, 8, 2, stride=2), (1, 16, 4, 4), (8, 8)),
    "conv1d": (nn.Conv1d(8, 16, 3), (1, 8, 20), (8, 8)),
    "linear": (nn.Linear(32, 10), (1, 32), (16, 10)),
    "tokens": (nn.Linear(32, 64), (1, 7, 32), (16, 24)),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_onnx_layer_runs_with_the_shapes_of_the_torch_layer(name, tmp_path):
    module, in_shape, (cin, cout) = LAYERS[name]
    spec = layer_spec(module, in_shape)
    path = tmp_path / "layer.onnx"
    path.write_bytes(onnx_layer(spec, cin, cout).SerializeToString())
    for batch in (1, 3):
        x = example_input(spec, cin, batch)
        expected = torch_layer(spec, cin, cout)(x)
        got = make_session(path, threads=1).run(None, {"x": x.numpy()})[0]
        assert got.shape == tuple(expected.shape) and np.isfinite(got).all()


def test_grouped_layers_keep_channels_per_group():
    spec = layer_spec(nn.Conv2d(16, 32, 3, groups=4), (1, 16, 8, 8))
    assert spec.grouped and spec.groups_at(8) == 2 and spec.groups_at(16) == 4
    dw = layer_spec(nn.Conv2d(16, 16, 3, groups=16), (1, 16, 8, 8))
    assert dw.groups_at(8) == 8 and torch_layer(dw, 8, 8).groups == 8
    assert not layer_spec(nn.Conv2d(16, 32, 3), (1, 16, 8, 8)).grouped
    assert layer_spec(nn.Linear(4, 5), (1, 4)).key() != layer_spec(nn.Linear(4, 5), (1, 2, 4)).key()
