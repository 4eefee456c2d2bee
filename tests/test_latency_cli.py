"""`compress prune --target-speedup` on the tiny model with the real onnxruntime timer."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli_helpers import run_cli


def _prune(tiny_assets, out, capsys, extra=()):
    return run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                    "--target-speedup", "1.2", "--backend", "onnxruntime", "--batch", "4", "--threads", "1",
                    "--no-recover", "--no-progress", "-o", out, "--overwrite", "--json", *extra], capsys)


def test_target_speedup_measures_reports_and_reuses_its_table(tiny_assets, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COMPRESS_CACHE_DIR", str(tmp_path / "cache"))
    code, stdout, err = _prune(tiny_assets, tmp_path / "out", capsys)
    assert code == 0, err
    s = json.loads(stdout)
    lat = s["latency"]
    assert (lat["backend"], lat["batch"], lat["threads"]) == ("onnxruntime", 4, 1)
    assert 0 < lat["measured_ms"] and 0 < lat["predicted_ms"] and lat["target_ms"] > 0
    assert 0 < lat["importance_kept"] < 1 and s["macs_after"] < s["macs_before"]
    assert lat["prediction_error"]["configs"] == 3 and lat["attempts"]
    table = Path(lat["table"]["path"])
    assert table.is_relative_to(tmp_path / "cache") and table.is_file() and lat["table"]["measured_now"] > 0
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["latency"]["target_ms"] == lat["target_ms"]
    assert "prediction error on 3 held-out configurations" in err

    code, stdout, err = _prune(tiny_assets, tmp_path / "out2", capsys)
    assert code == 0, err
    again = json.loads(stdout)["latency"]["table"]
    assert again["reused"] and again["measured_now"] == 0 and again["path"] == str(table)


def test_latency_target_errors_are_one_line(tiny_assets, tmp_path, capsys):
    code, _, err = _prune(tiny_assets, tmp_path / "o", capsys, extra=["--ratio", "0.5"])
    assert code != 0 and "exactly one of" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                            "--target-latency", "fast", "-o", tmp_path / "p"], capsys)
    assert code != 0 and "cannot read latency 'fast'" in err
