"""Issue 49: --task auto refuses what it cannot place (one line, exit 2, before the graph), --task raw (scale-free
regression distillation, relative error and cosine against the original) and --decode FILE.py:fn (a detector of
the user's own: mAP against the original's boxes and labelled mAP; a bad decoder is one line naming it)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from compress.tasks import get_task, resolve_task
from compress.tasks.raw import COSINE, REL_ERROR, normalised_mse
from tests.cli_helpers import run_cli
from tests.shuffledet import decode, shuffledet

ARCH = "tests/shuffledet.py:shuffledet"
DECODE = "tests/shuffledet.py:decode"


@pytest.fixture(scope="module")
def det_assets(tmp_path_factory):
    """A ShuffleNetV2-style detector whose boxes are its own (its head bias makes cells confident), 24 calibration
    images and a YOLO-labelled eval folder written from the original's own detections."""
    root = tmp_path_factory.mktemp("shuffledet")
    torch.manual_seed(0)
    model = shuffledet().eval()
    with torch.no_grad():
        model.head.bias[0] = 3.0  # objectness: every cell a candidate, so the original has boxes to compare
        model.head.bias[5:] = torch.tensor([2.0, -2.0, -2.0])
    torch.save(model.state_dict(), root / "det.pt")
    rng = np.random.default_rng(0)
    (root / "calib").mkdir()
    (root / "eval" / "images").mkdir(parents=True)
    (root / "eval" / "labels").mkdir()
    for i in range(24):
        Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(root / "calib" / f"{i}.png")
    for i in range(4):
        img = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
        Image.fromarray(img).save(root / "eval" / "images" / f"{i}.png")
        x = torch.from_numpy(img).permute(2, 0, 1).float().div(255).unsqueeze(0)
        with torch.no_grad():
            boxes, scores, labels = decode(model(x), (32, 32))[0]
        keep = scores >= 0.5
        lines = [f"{int(c)} {(b[0] + b[2]) / 64:.5f} {(b[1] + b[3]) / 64:.5f} {(b[2] - b[0]) / 32:.5f} "
                 f"{(b[3] - b[1]) / 32:.5f}" for b, c in zip(boxes[keep].clamp(0, 32).tolist(), labels[keep])]
        (root / "eval" / "labels" / f"{i}.txt").write_text("\n".join(lines) + "\n")
    return root


def _args(assets, *extra):
    return ["prune", assets / "det.pt", "--arch", ARCH, "--calib", assets / "calib", "--input-size", "32",
            "--mean", "0", "--std", "1", "--no-progress", *extra]


def test_auto_refuses_a_dense_head_before_the_graph(det_assets, capsys, tmp_path):
    code, out, err = run_cli(_args(det_assets, "-o", tmp_path / "out"), capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, err
    assert "Tensor of 2x8x4x4 for a 2x3x32x32 input" in errors[0] and "--task raw" in errors[0]
    assert "graph:" not in out + err and not (tmp_path / "out").exists()


def test_auto_still_claims_maps_at_the_input_resolution_and_known_segmenters():
    x = torch.zeros(2, 3, 16, 16)
    assert resolve_task("auto", torch.zeros(2, 5, 16, 16), x)[0].name == "segment"
    assert resolve_task("auto", {"out": torch.zeros(2, 5, 4, 4)}, x)[0].name == "segment"
    assert resolve_task("segment", torch.zeros(2, 5, 4, 4), x)[0].name == "segment"  # named: as asked


def test_raw_loss_is_scale_free_and_weighs_channels_by_their_signal():
    torch.manual_seed(0)
    t = torch.randn(4, 6, 3, 3) * torch.tensor([1.0, 1.0, 100.0, 100.0, 0.01, 0.01]).view(1, 6, 1, 1)
    s = t + 0.1 * torch.randn_like(t) * t.std(dim=(0, 2, 3), keepdim=True)  # 0.1 spread of each channel
    loss = normalised_mse(s, t)
    assert 0.005 < float(loss) < 0.02  # ~0.1^2 whatever each channel's scale
    assert torch.allclose(normalised_mse(s * 1000, t * 1000), loss, rtol=1e-4)
    task = get_task("raw")
    assert float(task.distill_loss((s, s[:, :2]), (t, t[:, :2]), 1.0)) == pytest.approx(
        (float(loss) + float(normalised_mse(s[:, :2], t[:, :2]))) / 2, rel=1e-5)


def test_raw_figures_relative_error_and_cosine():
    class Scaled(torch.nn.Module):
        def __init__(self, k):
            super().__init__()
            self.k = k

        def forward(self, x):
            return x * 2, x.mean((2, 3)) * self.k

    task = get_task("raw")
    images = torch.randn(6, 3, 4, 4)
    figures = task.extra_figures(Scaled(1.0), Scaled(1.0), images, None)
    assert figures[REL_ERROR] == 0 and figures[COSINE] == pytest.approx(1.0)
    meter = task.agreement_meter()
    meter.update(Scaled(-1.0)(images), Scaled(1.0)(images))
    assert meter.per_image().shape == (6,) and meter.value() < 1.0


@pytest.mark.parametrize("spec,fragment", [
    ("tests/nothere.py:decode", "no file tests/nothere.py"),
    ("tests/shuffledet.py:nothing", "has no function 'nothing'"),
    ("tests/shuffledet.py:shuffledet", "raised TypeError"),  # a function of the wrong signature
    ("tests/shuffledet.py:_cbr", "raised RuntimeError"),
])
def test_a_bad_decoder_is_one_line_naming_it(det_assets, capsys, tmp_path, spec, fragment):
    code, out, err = run_cli(_args(det_assets, "--task", "raw", "--decode", spec, "-o", tmp_path / "out"), capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "--decode " in errors[0] and spec in errors[0] and fragment in errors[0], err
    assert "graph:" not in out + err


def test_a_decoder_of_the_wrong_shape_is_refused():
    from compress.detection.user import UserDecoder
    from compress.errors import UsageError

    bad = UserDecoder("mine.py:fn", lambda outputs, size: [(torch.zeros(3, 5), torch.zeros(3), torch.zeros(3))] * 2)
    with pytest.raises(UsageError, match=r"--decode mine.py:fn: image 0: boxes \(3, 5\)"):
        bad(torch.zeros(2, 8, 4, 4), (32, 32), images=2)
    short = UserDecoder("mine.py:fn", lambda outputs, size: [])
    with pytest.raises(UsageError, match="returned list of 0 for a batch of 2 images"):
        short(torch.zeros(2, 8, 4, 4), (32, 32), images=2)


def test_raw_task_with_decoder_end_to_end(det_assets, capsys, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run_cli(_args(det_assets, "--task", "raw", "--decode", DECODE, "--eval", det_assets / "eval",
                                      "--ratio", "0.3", "--recover-steps", "4", "--batch-size", "8", "--json",
                                      "-o", out), capsys)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    figures = {k: summary[k] for k in (REL_ERROR, COSINE, "map50_vs_original", "map_before", "map_after")}
    assert 0 <= figures[REL_ERROR] < 1 and figures[COSINE] > 0.5
    assert figures["map50_vs_original"] is not None and figures["map_before"] > 0.5  # labels are its own boxes
    assert summary["map50_before"] > 0.9 and "map50_recovered" in summary
    record = json.loads((out / "compress.json").read_text())
    assert record["config"]["task"] == "raw" and record["config"]["decode"].endswith(DECODE)
