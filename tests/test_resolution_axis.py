"""Input size as a compression axis (``--axes``, compress.run.axes): the chosen size is the output's, read by
reload, export (the ONNX input), INT8 calibration and bench; ``--axes width`` is today's plan exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from compress.run.axes import parse_axes, resized_spec
from compress.errors import UsageError
from tests.cli_helpers import run_cli


def _onnx_input(path) -> list[int]:
    import onnx

    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value for d in dims[1:]]


def test_resolution_alone_is_the_output_reloaded_exported_quantized_and_benched(tiny_assets, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                                 "--eval", tiny_assets / "eval", "--target-macs", "0.6", "--axes", "resolution",
                                 "--no-recover", "--no-progress", "--export", "onnx,int8", "--bench", "-o", out], capsys)
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    h, w = s["input_size"][1:]
    assert (h, w) == tuple(s["axes"]["chosen"]["input_size"]) and h < 32 and h % 8 == 0
    assert s["axes"]["resolution_only"] and s["channels_removed"] == 0 and s["widths"] == {}
    assert s["macs_after"] <= 0.6 * s["macs_before"] and s["macs_after"] == s["axes"]["chosen"]["macs"]
    assert "resolution only: no channel cut" in stdout
    spec = json.loads((out / "compress.json").read_text())["spec"]
    assert spec["input_size"] == [3, h, w] and spec["preprocess"]["input_size"] == [h, w]
    assert _onnx_input(out / "model.onnx") == [3, h, w] and _onnx_input(out / "model.int8.onnx") == [3, h, w]
    import compress

    loaded = compress.load(str(out))
    assert tuple(loaded.spec.input_size) == (3, h, w)
    assert loaded.model(torch.zeros(1, 3, h, w)).shape == (1, 10)
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["input_shape"] == [3, h, w]


def test_width_and_resolution_chooses_by_measured_agreement(tiny_assets, tmp_path, capsys):
    code, stdout, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                                 "--target-macs", "0.5", "--axes", "width,resolution", "--no-recover", "--no-progress",
                                 "--json", "-o", tmp_path / "out"], capsys)
    assert code == 0, err
    s = json.loads(stdout)
    tried = s["axes"]["candidates"]
    assert tried[0]["input_size"] == [32, 32] and len(tried) >= 2  # the channel-only cut is always a candidate
    best = max(c["agreement"] for c in tried)
    assert s["axes"]["chosen"]["agreement"] == best and all(c["macs_ratio"] <= 0.52 for c in tried)
    assert s["input_size"][1:] == s["axes"]["chosen"]["input_size"]


def test_axes_width_is_todays_plan_exactly(tiny_assets, tmp_path, capsys):
    outs = []
    # without --target-macs the default is width alone; with it, the sizes are planned over unless --axes width
    for name, extra in (("default", ["--ratio", "0.3"]), ("width", ["--ratio", "0.3", "--axes", "width"]),
                        ("macs-width", ["--target-macs", "0.5", "--axes", "width"]), ("macs", ["--target-macs", "0.5"])):
        code, _, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                                "--no-recover", "--no-progress", "-o", tmp_path / name, *extra], capsys)
        assert code == 0, err
        outs.append(tmp_path / name)
    a, b, c, d = (json.loads((o / "summary.json").read_text()) for o in outs)
    assert "axes" not in a and "axes" not in b and "axes" not in c and a["input_size"] == b["input_size"] == [3, 32, 32]
    assert "axes" in d and d["axes"]["candidates"], "--target-macs without --axes plans over the input size"
    outs = outs[:2]
    for key in ("widths", "macs_after", "params_after", "agreement_pruned"):
        assert a[key] == b[key], key
    from safetensors.torch import load_file

    wa, wb = (load_file(str(o / "model.safetensors")) for o in outs)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (outs[0] / "plan.json").read_text() == (outs[1] / "plan.json").read_text()


def test_a_segmenters_masks_come_at_the_chosen_size(tmp_path, capsys):
    from PIL import Image
    from compress.archs.segdigits import segdigitnet

    torch.manual_seed(0)
    torch.save(segdigitnet().state_dict(), tmp_path / "seg.pt")
    rng = np.random.default_rng(0)
    (tmp_path / "calib").mkdir()
    for i in range(24):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "calib" / f"{i}.png")
    out = tmp_path / "out"
    code, stdout, err = run_cli(["prune", tmp_path / "seg.pt", "--arch", "segdigits", "--calib", tmp_path / "calib",
                                 "--target-macs", "0.6", "--axes", "resolution", "--no-recover", "--no-progress",
                                 "--export", "onnx", "-o", out], capsys)
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    h, w = s["input_size"][1:]
    assert s["task"] == "segment" and h < 32 and 0 <= s["axes"]["chosen"]["agreement"] <= 1
    import compress

    loaded = compress.load(str(out))
    masks = loaded.model(torch.zeros(1, 3, h, w))
    masks = masks["out"] if isinstance(masks, dict) else masks
    assert masks.shape[-2:] == (h, w) and _onnx_input(out / "model.onnx") == [3, h, w]


def test_axes_are_checked():
    assert parse_axes("resolution,width") == ("width", "resolution")
    with pytest.raises(UsageError, match="unknown axis"):
        parse_axes("depth")


def test_the_spec_scales_its_preprocessing():
    from compress.spec import ModelSpec

    spec = ModelSpec(kind="state_dict", checkpoint="x", input_size=(3, 224, 224),
                     preprocess={"input_size": [224, 224], "resize": 256, "center_crop": True})
    got = resized_spec(spec, (192, 192))
    assert got.input_size == (3, 192, 192) and got.preprocess["input_size"] == [192, 192]
    assert got.preprocess["resize"] == 219 and spec.preprocess["resize"] == 256
