"""`compress inspect`: the table, --json, a pruned folder, the real ResNet-20, and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from compress.archs.digits import digitnet
from compress.cli.main import cli, main
from compress.prune.profile import count_macs, count_params

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
R20 = SHARED / "models" / "resnet20-cifar10.th"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inspect") / "digits.pt"
    torch.manual_seed(0)
    torch.save({"model": digitnet().state_dict(), "epoch": 1}, path)
    return path


def invoke(args: list[str]):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_table_has_layers_and_totals(ckpt):
    result = invoke(["inspect", str(ckpt), "--arch", "digits"])
    out = result.stdout
    params, macs = count_params(digitnet()), count_macs(digitnet(), (3, 32, 32))
    assert "stem.0" in out and "block.conv2" in out and "fc" in out  # layer rows
    assert "16→32" in out  # down1: in→out channels
    assert f"{params:,}" in out and f"{macs:,}" in out
    assert "MACs at 3x32x32" in out and "size on disk" in out and f"{ckpt.stat().st_size:,} B" in out
    assert "state_dict" in out and "compress.archs.digits:digitnet" in out
    assert "weights: checkpoint['model']" in result.stderr  # which key the weights came from
    assert "stem.0" not in invoke(["inspect", str(ckpt), "--arch", "digits", "--no-layers"]).stdout


def test_json_is_one_object_with_int_params_and_macs(ckpt):
    result = invoke(["inspect", str(ckpt), "--arch", "digits", "--json"])
    data = json.loads(result.stdout)  # nothing else on stdout
    assert type(data["params"]) is int and data["params"] == count_params(digitnet())
    assert type(data["macs"]) is int and data["macs"] == count_macs(digitnet(), (3, 32, 32))
    assert data["input_size"] == [3, 32, 32] and data["size_bytes"] == ckpt.stat().st_size
    assert data["kind"] == "state_dict" and data["pruned"] is False
    assert [row["name"] for row in data["layers"]][:2] == ["stem.0", "down1.0"]
    assert sum(row["macs"] for row in data["layers"]) == data["layer_macs"] == data["macs"]


def test_input_size_option_changes_macs(ckpt):
    small = json.loads(invoke(["inspect", str(ckpt), "--arch", "digits", "--json", "--input-size", "16"]).stdout)
    big = json.loads(invoke(["inspect", str(ckpt), "--arch", "digits", "--json", "--input-size", "3x64x64"]).stdout)
    assert small["input_size"] == [3, 16, 16] and big["input_size"] == [3, 64, 64]
    assert small["macs"] == count_macs(digitnet(), (3, 16, 16))
    assert big["macs"] > 15 * small["macs"]  # 16x the pixels; the final linear does not scale


def test_exported_program(tmp_path):
    path = tmp_path / "d.pt2"
    torch.export.save(torch.export.export(digitnet().eval(), (torch.zeros(1, 3, 32, 32),)), path)
    data = json.loads(invoke(["inspect", str(path), "--json"]).stdout)
    assert data["kind"] == "export" and data["macs"] == count_macs(digitnet(), (3, 32, 32))
    assert data["layers"] == [] and data["other_macs"] == data["macs"]  # graph ops, no named modules


def test_pruned_folder(tmp_path, ckpt):
    from compress.models.loading import load_model
    from compress.artifacts.cuts import Cut
    from compress.artifacts.saved import save_pruned
    from compress.prune.surgery import apply_cuts

    loaded = load_model(ckpt, arch="digits")
    keep = list(range(0, 16, 2))  # stem: 16 -> 8 channels
    cuts = [Cut("stem.0", "out", 0, 16, tuple(keep)), Cut("stem.1", "chan", 0, 16, tuple(keep)),
            Cut("down1.0", "in", 1, 16, tuple(keep))]
    pruned = apply_cuts(loaded.model, cuts)
    save_pruned(tmp_path / "out", pruned, loaded.spec, cuts)
    result = invoke(["inspect", str(tmp_path / "out")])
    assert "pruned folder" in result.stdout and str(ckpt.resolve()) in result.stdout
    data = json.loads(invoke(["inspect", str(tmp_path / "out"), "--json"]).stdout)
    full = count_macs(digitnet(), (3, 32, 32))
    assert data["pruned"] is True and data["kind"] == "pruned"
    assert data["original"]["checkpoint"] == str(ckpt.resolve())
    assert data["macs"] == full - 3 * 8 * 9 * 32 * 32 - 8 * 32 * 9 * 16 * 16  # half of stem and down1 inputs
    assert data["input_size"] == [3, 32, 32]


@pytest.mark.shared
def test_shared_resnet20_json():
    if not R20.is_file():
        pytest.skip(f"shared data not found at {SHARED}")
    data = json.loads(invoke(["inspect", str(R20), "--arch", "cifar_resnet20", "--json"]).stdout)
    assert data["params"] == 269722  # 0.27 M
    assert data["macs"] == 40_551_040  # hand-checked in test_profile
    assert 40e6 <= data["macs"] <= 42e6
    assert data["input_size"] == [3, 32, 32] and data["size_bytes"] == R20.stat().st_size
    assert len(data["layers"]) == 20


def test_errors_are_one_line_with_exit_code(tmp_path, ckpt, capsys):
    cases = [
        (["inspect", str(tmp_path / "missing.pt"), "--arch", "digits"], 3, "does not exist"),
        (["inspect", str(ckpt)], 3, "is a state_dict (weights only, no model class): name its architecture with --arch"),
        (["inspect", str(ckpt), "--arch", "digits", "--arch-kwargs", "num_classes"], 3, "is not key=value"),
        (["inspect", str(ckpt), "--arch", "digits", "--input-size", "3x1x"], 4, "cannot read input size"),
        (["inspect", str(ckpt), "--arch", "digits", "--input-size", "1x32x32"], 4, "only RGB (3-channel)"),
    ]
    for args, code, message in cases:
        with pytest.raises(SystemExit) as exc:
            main(args)
        err = capsys.readouterr().err
        assert exc.value.code == code, (args, err)
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
