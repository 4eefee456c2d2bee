"""Issue 49: preprocessing that matches a training pipeline built on OpenCV: BGR channel order, resize without
antialiasing (cv2 INTER_LINEAR / INTER_AREA), letterbox; recorded in the spec and read back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from calibrate.boxes import box_geometry
from calibrate.preprocess import Preprocess, resolve_preprocess
from calibrate.resize import _box, _linear, letterbox_frame, resize_array

try:
    import cv2
except ImportError:  # compared against values computed here instead
    cv2 = None

RNG = np.random.default_rng(0)
IMAGE = (RNG.random((37, 53, 3)) * 255).astype(np.uint8)  # odd sizes: fractional scales both ways


def _ours(pre: Preprocess, arr: np.ndarray = IMAGE) -> torch.Tensor:
    return pre(Image.fromarray(arr))


@pytest.mark.parametrize("size", [(20, 16), (26, 18), (80, 60), (53, 37)])
@pytest.mark.parametrize("kernel", ["bilinear", "area"])
def test_opencv_kernels_give_opencv_pixels(kernel, size):
    ours = resize_array(IMAGE, size, kernel).astype(int)
    if cv2 is not None:
        flag = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}[kernel]
        theirs = cv2.resize(IMAGE, size, interpolation=flag).astype(int)
        assert ours.shape == theirs.shape and np.abs(ours - theirs).max() <= 1  # cv2's fixed point: one grey level
        assert np.abs(ours - theirs).mean() < 0.2


def test_kernels_computed_by_hand():
    # a 2x shrink: bilinear reads the two middle pixels of each 4 (half-pixel centres), area averages all 4
    row = np.array([0, 40, 80, 120, 160, 200, 240, 255], dtype=np.float64)
    assert np.allclose(_linear(8, 4) @ row, [20, 100, 180, 247.5])
    assert np.allclose(_box(8, 4) @ row, [20, 100, 180, 247.5])
    assert np.allclose(_box(8, 3) @ row, [(0 + 40 + 80 * 2 / 3) * 3 / 8, (80 / 3 + 120 + 160 + 200 / 3) * 3 / 8,
                                          (200 * 2 / 3 + 240 + 255) * 3 / 8])
    assert np.allclose(_linear(8, 2) @ row, [60, 220])  # a 4x shrink skips pixels: no antialiasing


def test_bgr_reverses_the_channels_before_normalising():
    rgb = Preprocess(input_size=(37, 53), mean=(0.1, 0.2, 0.3), std=(1, 1, 1))
    bgr = Preprocess(input_size=(37, 53), mean=(0.1, 0.2, 0.3), std=(1, 1, 1), channel_order="bgr")
    x = torch.from_numpy(IMAGE).permute(2, 0, 1).float() / 255
    assert torch.allclose(_ours(bgr), x.flip(0) - torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1))
    assert torch.allclose(_ours(rgb), x - torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1))
    if cv2 is not None:  # what a pipeline of cv2.cvtColor(RGB2BGR), cv2.resize, /255 feeds the model
        theirs = cv2.resize(cv2.cvtColor(IMAGE, cv2.COLOR_RGB2BGR), (32, 24), interpolation=cv2.INTER_LINEAR)
        pre = Preprocess(input_size=(24, 32), mean=(0, 0, 0), std=(1, 1, 1), channel_order="bgr", resize_kernel="bilinear")
        diff = (_ours(pre) - torch.from_numpy(theirs).permute(2, 0, 1).float() / 255).abs().max()
        assert float(diff) <= 1 / 255 + 1e-6


def test_letterbox_fits_pads_and_moves_the_boxes():
    pre = Preprocess(input_size=(64, 64), mean=(0, 0, 0), std=(1, 1, 1), letterbox=True, resize_kernel="bilinear")
    nw, nh, left, top = letterbox_frame(53, 37, 64, 64)
    assert (nw, nh, left, top) == (64, 45, 0, 9)
    x = _ours(pre)
    assert torch.allclose(x[:, :top], torch.full_like(x[:, :top], 114 / 255))
    assert torch.allclose(x[:, top + nh:], torch.full_like(x[:, top + nh:], 114 / 255))
    box = box_geometry(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), (53, 37), pre)
    assert box.tolist() == [[0.0, 9.0, 64.0, 54.0]]
    if cv2 is not None:
        theirs = cv2.copyMakeBorder(cv2.resize(IMAGE, (nw, nh), interpolation=cv2.INTER_LINEAR), top, 64 - nh - top,
                                    left, 64 - nw - left, cv2.BORDER_CONSTANT, value=(114, 114, 114))
        assert float((x - torch.from_numpy(theirs).permute(2, 0, 1).float() / 255).abs().max()) <= 1 / 255 + 1e-6


def test_the_pipeline_is_recorded_and_read_back_and_defaults_write_what_they_wrote():
    pre = resolve_preprocess(input_size=64, channel_order="bgr", resize_kernel="area", letterbox=True)
    d = pre.to_dict()
    assert d["channel_order"] == "bgr" and d["resize_kernel"] == "area" and d["letterbox"] is True
    assert Preprocess.from_dict(d) == pre
    assert set(Preprocess(input_size=8).to_dict()) == {"input_size", "resize", "center_crop", "mean", "std"}
    assert "BGR" in pre.describe() and "INTER_AREA" in pre.describe()
