"""`prune --export onnx,int8 --bench --eval`: report.json names the files where the run left them (not its
temporary `.partial` folder), and the INT8 columns hold the INT8 model's own top-1 and agreement; so does
`compress bench` of that folder, also when onnxruntime is not among its backends."""

from __future__ import annotations

import json
import re

import pytest

from tests.cli_helpers import run_cli

PATHS = ("onnx_path", "int8_path", "engine_path")


@pytest.fixture(scope="module")
def fast_bench():
    """The bench's timing cut short (its figures are not what these tests check)."""
    from compress.run import deploy

    real = deploy.run_bench
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(deploy, "run_bench", lambda models, **kw: real(
            models, **{**kw, "iters": 3, "warmup": 1, "min_seconds": 0.0, "measure_memory": False}))
        yield


@pytest.fixture(scope="module")
def pruned(tiny_assets, tmp_path_factory, fast_bench):
    out = tmp_path_factory.mktemp("prune-bench") / "out"
    args = ["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
            "--eval", tiny_assets / "eval", "--ratio", "0.5", "--no-recover", "--export", "onnx,int8", "--bench",
            "-o", out, "--no-progress", "--json"]
    code, _, _ = run_cli(args, _Uncaptured())
    assert code == 0
    return out


class _Uncaptured:
    """run_cli's ``capsys`` for a module-scoped fixture (pytest's own capture keeps the output)."""

    def readouterr(self):
        return "", ""


def models_table_row(text: str, name: str) -> list[str]:
    """The cells of ``name``'s row in the first ("Models") table rendered in ``text``."""
    line = next(line for line in text.splitlines() if re.match(rf"│ {name} ", line))
    return [cell.strip() for cell in line.strip("│").split("│")]


def test_prune_report_names_the_final_files_and_int8_figures(pruned, capsys):
    out = pruned
    written = sorted(out.rglob("*.json"))
    assert {p.name for p in written} >= {"report.json", "summary.json", "export.json"}
    for path in written:
        assert ".partial" not in path.read_text(), path
    report = json.loads((out / "report.json").read_text())
    models = {m["name"]: m for m in report["models"]}
    assert models["compressed"]["onnx_path"] == "model.onnx"  # relative to the folder, as export.json names them
    assert models["compressed"]["int8_path"] == "model.int8.onnx"
    assert models["original"]["onnx_path"] == "bench/original.onnx"
    for model in models.values():
        for key in PATHS:
            if model[key] is not None:
                assert (out / model[key]).is_file()

    compressed = models["compressed"]
    int8_row = next(r for r in report["rows"] if r["model"] == "compressed" and r["precision"] == "int8")
    assert compressed["int8_top1"] is not None and compressed["int8_agreement"] is not None
    assert (compressed["int8_top1"], compressed["int8_agreement"]) == (int8_row["top1"], int8_row["agreement"])
    assert int8_row["accuracy_images"] == 12  # the --eval images
    assert models["original"]["int8_top1"] is None  # no INT8 file of the original

    from compress.export.report import render_table
    from rich.console import Console

    render_table(report, console=Console(width=200, force_terminal=False))
    cells = models_table_row(capsys.readouterr().out, "compressed")
    # model, params, MACs, top-1, agreement, INT8 top-1, INT8 agreement: none shown as "-"
    assert len(cells) == 7 and "-" not in cells, cells


def test_bench_of_the_folder_fills_the_int8_columns_without_an_onnxruntime_row(pruned, tiny_assets, tmp_path, capsys):
    folder = pruned
    out = tmp_path / "report"
    code, stdout, err = run_cli(["bench", folder, "--backend", "torch", "--batch", "1", "--iters", "2", "--warmup", "1",
                                 "--no-memory", "--eval", tiny_assets / "eval", "-o", out, "--json"], capsys)
    assert code == 0, err
    models = {m["name"]: m for m in json.loads(stdout)["models"]}
    compressed = models["compressed"]
    assert compressed["int8_top1"] is not None and compressed["int8_agreement"] is not None
    # outside the report's folder: absolute paths, to the files themselves
    assert compressed["int8_path"] == str((folder / "model.int8.onnx").absolute())
    assert json.loads((out / "report.json").read_text())["models"] == json.loads(stdout)["models"]
