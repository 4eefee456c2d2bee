"""Presets, overrides, input-size parsing and the tensor values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from compress.calibrate.errors import CalibrationError
from compress.calibrate.preprocess import PRESETS, Preprocess, parse_input_size, resolve_preprocess

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _noise(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_presets_exact_numbers():
    imagenet, cifar = PRESETS["imagenet"], PRESETS["cifar"]
    assert (imagenet.input_size, imagenet.resize, imagenet.center_crop) == ((224, 224), 256, True)
    assert (cifar.input_size, cifar.resize, cifar.center_crop) == ((32, 32), None, False)
    for p in (imagenet, cifar):
        assert p.mean == MEAN and p.std == STD
    assert imagenet.input_shape == (3, 224, 224)


@pytest.mark.parametrize("size", [(300, 200), (200, 333), (224, 224), (100, 60)])
def test_imagenet_matches_torchvision(size):
    import torchvision.transforms as T

    img = _noise(*size)
    ref = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])(img)
    out = PRESETS["imagenet"](img)
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref)


def test_cifar_values_and_resize():
    img = Image.new("RGB", (32, 32), (255, 0, 128))
    x = PRESETS["cifar"](img)
    assert x.shape == (3, 32, 32)
    expected = [(1 - MEAN[0]) / STD[0], (0 - MEAN[1]) / STD[1], (128 / 255 - MEAN[2]) / STD[2]]
    torch.testing.assert_close(x[:, 5, 7], torch.tensor(expected))
    noise = _noise(32, 32)
    assert PRESETS["cifar"].geometry(noise) is noise  # already 32x32: untouched
    assert PRESETS["cifar"](_noise(64, 48)).shape == (3, 32, 32)  # squashed, not cropped
    assert PRESETS["cifar"](Image.new("L", (32, 32), 10)).shape == (3, 32, 32)


def test_resolve_defaults_and_overrides():
    assert resolve_preprocess() == PRESETS["imagenet"]
    assert resolve_preprocess(default="cifar") == PRESETS["cifar"]
    assert resolve_preprocess("CIFAR") == PRESETS["cifar"]
    only_size = resolve_preprocess(input_size="3x64x48")
    assert only_size == Preprocess(input_size=(64, 48), resize=None, center_crop=False, mean=MEAN, std=STD)
    assert only_size(_noise(100, 30)).shape == (3, 64, 48)
    big = resolve_preprocess("imagenet", input_size=299)
    assert (big.input_size, big.resize, big.center_crop) == ((299, 299), 342, True)
    custom = resolve_preprocess("cifar", mean=(0.5, 0.5, 0.5), std="0.25,0.25,0.25")
    assert custom.mean == (0.5, 0.5, 0.5) and custom.std == (0.25, 0.25, 0.25)
    assert custom.input_size == (32, 32)
    x = custom(Image.new("RGB", (32, 32), (255, 255, 255)))
    torch.testing.assert_close(x, torch.full((3, 32, 32), 2.0))


def test_resolve_errors():
    with pytest.raises(CalibrationError) as exc:
        resolve_preprocess("imagnet")
    assert "imagnet" in str(exc.value) and "cifar" in exc.value.hint and "imagenet" in exc.value.hint
    assert exc.value.exit_code == 4
    with pytest.raises(CalibrationError, match="mean"):
        resolve_preprocess("cifar", mean=(0.5, 0.5))
    with pytest.raises(CalibrationError, match="std must be positive"):
        resolve_preprocess("cifar", std=(0.5, 0.0, 0.5))
    with pytest.raises(CalibrationError):
        resolve_preprocess(default=None)


@pytest.mark.parametrize("value, expected", [
    (224, (224, 224)), ("224", (224, 224)), ("3x224x224", (224, 224)), ("224x160", (224, 160)),
    ("224X160", (224, 160)), ((32, 48), (32, 48)), ((3, 32, 48), (32, 48)), ([64], (64, 64)), (" 3 x 8 x 9 ", (8, 9)),
])
def test_parse_input_size(value, expected):
    assert parse_input_size(value) == expected


@pytest.mark.parametrize("value", ["abc", "", "0", -3, "224x224x224x3", "1x224x224", 2.5, True, "224x", (0, 5), None])
def test_parse_input_size_errors(value):
    with pytest.raises(CalibrationError) as exc:
        parse_input_size(value)
    assert "input size" in str(exc.value)
    assert "3x224x224" in exc.value.hint or "RGB" in exc.value.hint


def test_dict_round_trip():
    for p in (*PRESETS.values(), resolve_preprocess(input_size=(40, 30), mean=0.5, std=0.2)):
        d = p.to_dict()
        assert isinstance(d["input_size"], list)
        assert Preprocess.from_dict(d) == p
    with pytest.raises(CalibrationError, match="unknown preprocessing keys: size"):
        Preprocess.from_dict({"input_size": [32, 32], "size": 3})
