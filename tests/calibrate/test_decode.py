"""Every odd PIL mode decodes to 8-bit RGB of the right size, with the documented values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from compress.calibrate.folder import load_rgb, to_rgb

W, H = 7, 5


def _decoded(tmp_path, img: Image.Image, name: str, **save) -> np.ndarray:
    path = tmp_path / name
    img.save(path, **save)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. PIL's palette-transparency warning
        out = load_rgb(path)
    assert out.mode == "RGB" and out.size == (W, H)
    return np.asarray(out)


def test_grey_l(tmp_path):
    arr = _decoded(tmp_path, Image.new("L", (W, H), 100), "l.png")
    assert (arr == 100).all()


def test_la_drops_alpha(tmp_path):
    arr = _decoded(tmp_path, Image.new("LA", (W, H), (50, 0)), "la.png")
    assert (arr == 50).all()


def test_rgba_drops_alpha(tmp_path):
    arr = _decoded(tmp_path, Image.new("RGBA", (W, H), (10, 20, 30, 0)), "rgba.png")
    assert (arr == [10, 20, 30]).all()


def test_palette(tmp_path):
    img = Image.new("P", (W, H), 1)
    img.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    arr = _decoded(tmp_path, img, "p.png")
    assert (arr == [200, 100, 50]).all()


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (W, H), 0)
    img.putpixel((1, 1), 1)
    img.putpalette([9, 8, 7, 200, 100, 50] + [0] * 762)
    arr = _decoded(tmp_path, img, "pt.png", transparency=0)
    assert Image.open(tmp_path / "pt.png").info.get("transparency") == 0
    assert (arr[0, 0] == [9, 8, 7]).all() and (arr[1, 1] == [200, 100, 50]).all()


def test_16bit_is_rescaled_not_clipped(tmp_path):
    grey = np.full((H, W), 25700, dtype=np.uint16)  # 100 * 257: clipping would give 255
    grey[0, 0] = 65535
    img = Image.fromarray(grey)
    assert img.mode == "I;16"
    arr = _decoded(tmp_path, img, "g16.png")
    assert arr[0, 0].tolist() == [255, 255, 255] and (arr[1:] == 100).all()


def test_16bit_big_endian_and_32bit_modes():
    big = Image.frombytes("I;16B", (W, H), np.full((H, W), 25700, dtype=">u2").tobytes())
    assert (np.asarray(to_rgb(big)) == 100).all()
    wide = Image.fromarray(np.full((H, W), 25700, dtype=np.int32))
    assert wide.mode == "I" and (np.asarray(to_rgb(wide)) == 100).all()
    small = Image.fromarray(np.full((H, W), 77, dtype=np.int32))
    assert (np.asarray(to_rgb(small)) == 77).all()  # 8-bit data in an I image is kept
    unit = Image.fromarray(np.full((H, W), 0.5, dtype=np.float32))
    assert unit.mode == "F" and (np.asarray(to_rgb(unit)) == 128).all()


def test_float_tiff_file(tmp_path):
    arr = _decoded(tmp_path, Image.fromarray(np.full((H, W), 0.2, dtype=np.float32)), "f.tif")
    assert (arr == 51).all()


def test_cmyk(tmp_path):
    arr = _decoded(tmp_path, Image.new("CMYK", (W, H), (0, 255, 255, 0)), "cmyk.tif")
    assert (arr == [255, 0, 0]).all()
    _decoded(tmp_path, Image.new("CMYK", (W, H), (0, 0, 0, 0)), "cmyk.jpg")


def test_one_bit(tmp_path):
    img = Image.new("1", (W, H), 0)
    img.putpixel((2, 3), 1)
    arr = _decoded(tmp_path, img, "bw.bmp")
    assert arr[3, 2].tolist() == [255, 255, 255] and arr.sum() == 3 * 255


@pytest.mark.parametrize("orientation, swapped", [(1, False), (6, True), (8, True), (3, False)])
def test_exif_orientation_applied(tmp_path, orientation, swapped):
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # white band on the left
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    out = load_rgb(path)
    assert out.size == ((20, 40) if swapped else (40, 20))
    arr = np.asarray(out).astype(int)
    if orientation == 6:  # rotated 90° clockwise: the left band is now on top
        assert arr[:5].mean() > 200 and arr[-5:].mean() < 50
    if orientation == 3:  # rotated 180°: the band is on the right
        assert arr[:, -5:].mean() > 200 and arr[:, :5].mean() < 50
