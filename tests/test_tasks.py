"""Tasks: output structures, auto detection, losses, meters, labelled segmentation folders, importance."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from compress.errors import UsageError
from compress.tasks import flatten_outputs, get_task, resolve_task
from compress.tasks.segment import confusion, miou

X = torch.randn(2, 3, 8, 8)


def test_flatten_handles_every_structure_in_order_and_refuses_other_leaves():
    a, b, c = torch.zeros(1), torch.ones(1), torch.full((1,), 2.0)
    Pair = namedtuple("Pair", "first second")
    out = flatten_outputs({"out": a, "aux": [b, Pair(c, None)]})
    assert [t.item() for t in out] == [0.0, 1.0, 2.0]
    with pytest.raises(UsageError, match="str"):
        flatten_outputs({"out": a, "name": "x"})


def test_auto_picks_segment_for_maps_classify_for_logits_and_refuses_the_rest():
    assert resolve_task("auto", {"out": torch.randn(2, 5, 8, 8), "aux": torch.randn(2, 5, 8, 8)}, X)[0].name == "segment"
    assert resolve_task("auto", torch.randn(2, 10), X)[0].name == "classify"
    assert resolve_task("auto", (torch.randn(2, 10), torch.randn(2, 10)), X)[0].name == "classify"
    with pytest.raises(UsageError, match="no task fits"):
        resolve_task("auto", torch.randn(2, 4, 4), X)
    with pytest.raises(UsageError, match="does not fit"):
        resolve_task("classify", torch.randn(2, 5, 8, 8), X)
    with pytest.raises(UsageError, match="unknown task"):
        get_task("detect-everything")


def test_segment_loss_is_per_pixel_kl_with_aux_weighted_and_zero_when_equal():
    seg = get_task("segment")
    t = {"out": torch.randn(2, 4, 5, 5), "aux": torch.randn(2, 4, 5, 5)}
    assert seg.distill_loss(t, t, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    s = {"out": t["out"].clone(), "aux": torch.randn(2, 4, 5, 5)}
    from compress.tasks import kl_per_position

    want = 0.5 * kl_per_position(s["aux"], t["aux"], 2.0).mean() * 4.0
    assert seg.distill_loss(s, t, 2.0).item() == pytest.approx(want.item(), rel=1e-5)


def test_classify_loss_is_the_classic_kd_loss():
    s, t = torch.randn(6, 10), torch.randn(6, 10)
    T = 4.0
    ref = torch.nn.functional.kl_div(torch.log_softmax(s / T, 1), torch.log_softmax(t / T, 1), log_target=True,
                                     reduction="batchmean") * T * T
    assert get_task("classify").distill_loss(s, t, T).item() == pytest.approx(ref.item(), rel=1e-5)


def test_miou_against_hand_counts_and_ignore_label():
    ref = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 2]])
    conf = confusion(pred, ref, 3)
    assert conf.sum().item() == 6  # ignored pixels left out
    # class 0: inter 1, union 3; class 1: inter 2, union 3; class 2: inter 1, union 2
    assert miou(conf) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_segment_agreement_meter_gives_miou_and_per_image_pixel_agreement():
    seg = get_task("segment")
    t = torch.zeros(2, 3, 2, 2)
    t[:, 1] = 1.0  # the teacher says class 1 everywhere
    s = t.clone()
    s[1, 2, 0, 0] = 5.0  # the student disagrees on one pixel of image 1
    meter = seg.agreement_meter()
    meter.update({"out": s}, {"out": t})
    assert meter.per_image().tolist() == [1.0, 0.75]
    assert meter.value() == pytest.approx((7 / 8 + 0.0) / 2)  # class 1 IoU 7/8, class 2 IoU 0


def test_segmentation_folder_masks_follow_the_geometry(tmp_path):
    from compress.calibrate.masks import load_segmentation
    from compress.calibrate.preprocess import Preprocess
    from compress.errors import CompressError  # noqa: F401 - the CLI maps CalibrationError to exit 4

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[:, 4:] = 3
    Image.fromarray(np.full((8, 8, 3), 100, dtype=np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(mask).save(tmp_path / "masks" / "a.png")
    x, y = load_segmentation(tmp_path, Preprocess(input_size=(4, 4)))
    assert x.shape == (1, 3, 4, 4) and y.shape == (1, 4, 4)
    assert y[0, :, :2].eq(0).all() and y[0, :, 2:].eq(3).all()  # nearest: labels stay labels
    x, y = load_segmentation(tmp_path, Preprocess(input_size=(10, 10), center_crop=True))
    assert y[0, 0, 0].item() == 255  # crop padding is ignored, never a class
    (tmp_path / "images" / "b.png").write_bytes((tmp_path / "images" / "a.png").read_bytes())
    from compress.calibrate import CalibrationError

    with pytest.raises(CalibrationError, match="has no mask"):
        load_segmentation(tmp_path, Preprocess(input_size=(4, 4)))


class _TwoHeads(nn.Module):
    """A dict output whose heads read different channels: importance must see both."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.a = nn.Conv2d(2, 3, 1)
        self.b = nn.Conv2d(2, 3, 1)

    def forward(self, x):
        h = self.conv(x)
        return {"out": self.a(h[:, :2]), "aux": self.b(h[:, 2:])}


def test_random_gradients_reach_every_output_and_the_first_matches_the_single_output_draw():
    from compress.prune.importance.taylor import backward_random, random_gradient

    torch.manual_seed(0)
    net = _TwoHeads()
    x = torch.randn(3, 3, 6, 6)
    outs = list(net(x).values())
    backward_random(outs, torch.arange(3), seed=0, draws=1)
    assert net.a.weight.grad.abs().sum() > 0 and net.b.weight.grad.abs().sum() > 0
    g0 = random_gradient(outs[0].detach(), torch.arange(3), 0, 0)
    g1 = random_gradient(outs[1].detach(), torch.arange(3), 0, 0, output=1)
    assert torch.allclose(g0.flatten(1).norm(dim=1), torch.ones(3)) and torch.allclose(g1.flatten(1).norm(dim=1), torch.ones(3))
    assert not torch.allclose(g0, g1)  # each output its own draw


def test_selection_test_takes_per_image_fractions_and_keeps_the_sign_test_for_hits():
    from compress.recover import not_worse

    best = torch.full((200,), 0.90)
    assert not not_worse(best, torch.full((200,), 0.89))  # a small drop on every image is resolved
    noise = torch.where(torch.arange(200) % 2 == 0, 0.01, -0.01)
    assert not_worse(best, best + noise)  # differences that cancel are a tie
    hits_best = torch.arange(200) < 180
    assert not_worse(hits_best, torch.arange(200) < 176)  # 4 discordant, all one way: 4 <= 2 * sqrt(4)
    assert not not_worse(hits_best, torch.arange(200) < 170)  # 10 of 10: beyond 2 * sqrt(10)
