"""The free alternative (compress.run.resolution): the original at the input size of equal MACs, measured and
shown beside every prune."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from compress.prune.profile import count_macs
from compress.run import resolution
from compress.tasks import get_task
from tests.cli_helpers import run_cli


class _Flat(nn.Module):
    """A classifier whose Linear reads the flattened map: it runs at its own input size only (a ViT's case)."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4 * 16 * 16, 5)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


class _Seg(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = self.b(torch.relu(self.a(x)))
        return {"out": nn.functional.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)}


def test_equal_macs_size_is_the_closest_multiple_of_8():
    model = _Seg().eval()
    full = count_macs(model, (3, 64, 96))
    size, macs, multiple = resolution.equal_macs_size(model, (3, 64, 96), full // 2)
    assert multiple == 8 and size[0] % 8 == 0 and size[1] % 8 == 0 and size[0] < 64
    assert macs == count_macs(model, (3, *size))
    for h in range(8, 64, 8):  # no other multiple of 8 (at the same aspect) is closer
        w = int(round(96 * h / 64 / 8)) * 8
        assert abs(count_macs(model, (3, h, w)) - full // 2) >= abs(macs - full // 2)


def test_masks_come_back_at_full_size_and_equal_the_original_at_full_size():
    model = _Seg().eval()
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        small = resolution.AtSize(model, (16, 24))(x)["out"]
        same = resolution.AtSize(model, (32, 48))(x)["out"]
    assert small.shape == (2, 4, 32, 48)
    assert torch.equal(same, model(x)["out"])


def test_a_model_that_runs_at_one_size_only_is_skipped_with_the_reason():
    task = get_task("classify")
    model = _Flat().eval()
    out = resolution.figures(model, (3, 16, 16), count_macs(model, (3, 16, 16)) // 2, task, torch.randn(4, 3, 16, 16))
    assert set(out) == {"skipped"} and "runs at no input smaller than 16x16" in out["skipped"]


def test_prune_shows_the_original_at_the_equal_macs_size(tiny_assets, tmp_path, capsys):
    args = ["prune", str(tiny_assets / "ckpt.pt"), "--arch", "digits", "--calib", str(tiny_assets / "calib"),
            "--eval", str(tiny_assets / "eval"), "--target-macs", "0.5", "--no-recover", "--no-progress",
            "-o", str(tmp_path / "out")]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    assert "original at " in stdout and "input: MACs" in stdout and "verdict: " in stdout
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    small = s[resolution.KEY]
    h, w = small["input_size"][1:]
    assert h < 32 and h % 8 == 0 and small["macs"] < s["macs_before"]
    from compress.archs.digits import digitnet

    assert small["macs"] == count_macs(digitnet().eval(), (3, h, w))
    for other in range(8, 32, 8):  # closest to the pruned model's MACs among the sizes tried
        assert abs(count_macs(digitnet().eval(), (3, other, other)) - s["macs_after"]) >= abs(small["macs"] - s["macs_after"])
    assert 0 <= small["agreement"] <= 1 and 0 <= small["top1"] <= 1
    code, stdout, err = run_cli(args[:-2] + ["--json", "-o", str(tmp_path / "json")], capsys)
    assert code == 0, err
    assert json.loads(stdout)[resolution.KEY]["input_size"] == small["input_size"]


def test_agreement_of_the_full_size_is_one():
    task = get_task("classify")
    from compress.archs.digits import digitnet

    torch.manual_seed(0)
    model, images = digitnet().eval(), torch.randn(8, 3, 32, 32)
    got = resolution.figures(model, (3, 32, 32), count_macs(model, (3, 32, 32)) - 1, task, images)
    assert got["input_size"] != [3, 32, 32]  # never the full size itself
    with torch.no_grad():
        assert torch.equal(resolution.AtSize(model, (32, 32))(images), model(images))


@pytest.mark.parametrize("size", [(16, 24), (24, 32)])
def test_boxes_scale_back_to_the_full_size(size):
    class Boxes(nn.Module):  # a stand-in whole detector: one box covering the whole image it is given
        def forward(self, images):  # torchvision's convention: a list of images
            return [{"boxes": torch.tensor([[0.0, 0.0, x.shape[-1], x.shape[-2]]]), "scores": torch.ones(1),
                     "labels": torch.zeros(1).long()} for x in images]

    raw = nn.Module()
    raw.detector = Boxes()
    got = resolution.scaled_detections(raw, torch.zeros(2, 3, 32, 48), size, (0.0,) * 3, (1.0,) * 3)
    assert torch.allclose(got[0]["boxes"], torch.tensor([[0.0, 0.0, 48.0, 32.0]]))
