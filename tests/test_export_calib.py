"""``compress export --calib DIR`` with a folder too large to hold in memory at once: INT8 is calibrated on the
images that fit (and says so), never refused as if no --calib had been given."""

from __future__ import annotations

import json

from tests.cli_helpers import run_cli

IMAGE_BYTES = 3 * 32 * 32 * 4  # one preprocessed 32x32 digits image, float32


def test_export_int8_calibrates_on_the_images_that_fit(tiny_assets, tmp_path, capsys, monkeypatch):
    import compress.cli.export_cmd as export_cmd

    monkeypatch.setattr(export_cmd, "PRELOAD_BYTES", 5 * IMAGE_BYTES)  # 5 of the 40 images fit
    code, _, err = run_cli(["export", tiny_assets / "ckpt.pt", "--arch", "digits", "--format", "onnx,int8",
                            "--calib", tiny_assets / "calib", "-o", tmp_path / "out"], capsys)
    assert code == 0, err
    assert "5 of 40 images" in err
    record = json.loads((tmp_path / "out" / "export.json").read_text())
    assert record["int8"]["quantize_nodes"] > 0 and record["images"]["calibration"] == 5


def test_export_refuses_an_input_size_one_image_does_not_fit(tiny_assets, tmp_path, capsys, monkeypatch):
    import compress.cli.export_cmd as export_cmd

    monkeypatch.setattr(export_cmd, "PRELOAD_BYTES", IMAGE_BYTES - 1)
    code, _, err = run_cli(["export", tiny_assets / "ckpt.pt", "--arch", "digits", "--format", "onnx,int8",
                            "--calib", tiny_assets / "calib", "-o", tmp_path / "out"], capsys)
    assert code == 4 and "one preprocessed image of shape 3x32x32 takes more than" in err, err
    assert not (tmp_path / "out").exists()
