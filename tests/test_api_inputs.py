"""``compress.prune_model`` checks its images tensor first: one line per bad input, the module untouched and
returned in the mode it was given in; float64/float16 converted, ``ratio="0.5"`` read as a number."""

from __future__ import annotations

import pytest
import torch

import compress
from compress.archs.digits import digitnet
from compress.calibrate.errors import CalibrationError
from compress.errors import UsageError


def _x(n: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _nan_at(i: int, value: float = float("nan")) -> torch.Tensor:
    x = _x()
    x[i, 1, 4, 4] = value
    return x


CASES = [  # case, images, options, error class, message fragment
    ("channels last", _x().permute(0, 2, 3, 1), {}, UsageError, "pass images.permute(0, 3, 1, 2)"),
    ("one channel", _x()[:, :1], {}, UsageError, "images have 1 channels (shape (16, 1, 32, 32)), but the model's "
     "first convolution takes 3"),
    ("3-d", _x()[0], {}, UsageError, "not a 3-d torch.float32 tensor of shape (3, 32, 32)"),
    ("uint8", (_x() * 255).to(torch.uint8), {}, UsageError, "images are torch.uint8"),
    ("int64", (_x() * 255).long(), {}, UsageError, "images are torch.int64"),
    ("meta", _x().to("meta"), {}, UsageError, "meta tensor"),
    ("a list", [_x()[0]], {}, UsageError, "not list"),
    ("no image", _x()[:0], {}, UsageError, "N = 0"),
    ("one NaN pixel", _nan_at(37 % 16), {}, CalibrationError, "image 5 of 16 holds NaN values"),
    ("one inf pixel", _nan_at(3, float("inf")), {}, CalibrationError, "image 3 of 16 holds inf values"),
    ("all NaN", torch.full((16, 3, 32, 32), float("nan")), {}, CalibrationError, "image 0 of 16 holds NaN"),
    ("ratio 'half'", _x(), {"ratio": "half"}, UsageError, "ratio must be a number, got 'half'"),
    ("2 images, recovery on", _x(2), {"recover": True}, CalibrationError,
     "the images tensor has 2 usable images: recovery trains on 1"),
]


@pytest.mark.parametrize("case, images, options, error, fragment", CASES, ids=[c[0] for c in CASES])
def test_prune_model_refuses_bad_images_in_one_line(case, images, options, error, fragment):
    model = digitnet().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(error) as raised:
        compress.prune_model(model, images, **{"recover": False, **options})
    message = str(raised.value)
    assert fragment in message and "\n" not in message, message
    assert model.training and all(torch.equal(state[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_other_float_dtypes_are_converted(dtype):
    result = compress.prune_model(digitnet(), _x().to(dtype), ratio="0.5", recover=False)
    assert result.summary.macs_after < result.summary.macs_before


def test_the_module_comes_back_in_its_mode():
    for train in (True, False):
        model = digitnet().train(train)
        compress.prune_model(model, _x(), ratio=0.3, recover=False)
        assert model.training is train
