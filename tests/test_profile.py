"""Parameter and MAC counts, checked against hand-computed figures."""

from __future__ import annotations

import torch
import torch.nn as nn

import pytest

from compress.errors import UsageError
from compress.models.arch import resolve_arch
from compress.prune.profile import count_macs, count_params, layer_table, per_layer_macs, profile_macs


def resnet20_macs_by_hand() -> int:
    """CIFAR ResNet-20 at 32x32: every 3x3 conv is C_in*C_out*9 per output pixel, plus the linear."""
    conv = lambda c_in, c_out, hw: c_in * c_out * 9 * hw * hw  # noqa: E731
    total = conv(3, 16, 32) + 6 * conv(16, 16, 32)
    total += conv(16, 32, 16) + 5 * conv(32, 32, 16)
    total += conv(32, 64, 8) + 5 * conv(64, 64, 8)
    return total + 64 * 10


def test_resnet20_params_and_macs():
    model = resolve_arch("cifar_resnet20", {})  # random weights: MACs do not depend on them
    assert count_params(model) == 269722  # 0.27 M
    macs = count_macs(model, (3, 32, 32))
    assert macs == resnet20_macs_by_hand() == 40_551_040  # about 41 M
    layers = per_layer_macs(model, (3, 32, 32))
    assert len(layers) == 20  # 19 convs + linear
    assert layers["conv1"] == 3 * 16 * 9 * 32 * 32 and layers["linear"] == 640
    assert sum(layers.values()) == macs


def test_layer_rows():
    rows = layer_table(resolve_arch("cifar_resnet20", {}), (3, 32, 32))
    first = rows[0]
    assert (first.name, first.type, first.in_channels, first.out_channels) == ("conv1", "Conv2d", 3, 16)
    assert first.kernel == (3, 3) and first.groups == 1 and first.params == 432
    assert first.output_shape == (16, 32, 32)
    down = next(r for r in rows if r.name == "layer3.0.conv1")
    assert down.output_shape == (64, 8, 8) and down.macs == 32 * 64 * 9 * 64
    assert rows[-1].to_dict()["kernel"] is None and rows[-1].output_shape == (10,)


def test_grouped_depthwise_and_transposed_convs():
    model = nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise: 8 * 9 per pixel
        nn.Conv2d(8, 12, 1, groups=4),  # grouped: 12 outputs * (8/4) inputs per pixel
        nn.ConvTranspose2d(12, 6, 2, stride=2, groups=3),  # each input scattered to 2 out ch * 4 taps
    )
    rows = {r.name: r for r in layer_table(model, (8, 10, 10))}
    assert rows["0"].macs == 8 * 9 * 100 and rows["0"].groups == 8
    assert rows["1"].macs == 12 * 2 * 100
    assert rows["2"].macs == 12 * 100 * (6 // 3) * 4 and rows["2"].output_shape == (6, 20, 20)
    assert count_macs(model, (8, 10, 10)) == 7200 + 2400 + 9600  # matches torch's own FLOP counter
    assert rows["0"].params == 8 * 9 + 8  # weights + bias; bias adds no MACs


def test_conv1d_conv3d_and_linear_on_tokens():
    assert count_macs(nn.Conv1d(4, 5, 3), (4, 10)) == 5 * 4 * 3 * 8
    assert count_macs(nn.Conv3d(2, 3, 2), (2, 4, 4, 4)) == 3 * 2 * 8 * 27
    assert count_macs(nn.Linear(6, 5), (7, 6)) == 7 * 6 * 5  # 7 tokens


def test_attention_matmuls_counted_outside_layers():
    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = nn.MultiheadAttention(16, 2, batch_first=True)

        def forward(self, x):
            return self.mha(x, x, x, need_weights=False)[0]

    fastpath = torch.backends.mha.get_fastpath_enabled()
    prof = profile_macs(Attn(), (5, 16))  # 5 tokens of width 16
    in_proj, scores, mix, out_proj = 3 * 16 * 16 * 5, 5 * 5 * 16, 5 * 5 * 16, 16 * 16 * 5
    assert prof.total_macs == in_proj + scores + mix + out_proj
    assert prof.other_macs == prof.total_macs - prof.layer_macs > 0
    assert torch.backends.mha.get_fastpath_enabled() == fastpath  # restored


def test_exported_module_counts_the_same():
    model = resolve_arch("digits", {}).eval()
    program = torch.export.export(model, (torch.zeros(1, 3, 32, 32),))
    exported = program.module()
    assert count_macs(exported, (3, 32, 32)) == count_macs(model, (3, 32, 32))
    assert count_params(exported) == count_params(model)
    assert profile_macs(exported, (3, 32, 32)).layers == []  # no modules to name: all in "other"


def test_training_mode_restored_and_bad_input_reported():
    model = resolve_arch("digits", {})
    model.train()
    count_macs(model, (3, 32, 32))
    assert model.training
    with pytest.raises(UsageError, match=r"the model fails on a 1x1x32x32 input") as err:
        count_macs(model, (1, 32, 32))
    assert "--input-size" in err.value.hint
