"""The ``ort-format`` runtime (``export.runtimes.ort_format``): ``.ort`` files for onnxruntime Mobile, exported,
verified, benched and measured like every format, with no other file naming it."""

from __future__ import annotations

import json

import pytest

from compress.export.bench import BenchModel, run_bench
from compress.export.runtimes import files, formats, get
from tests.cli_helpers import run_cli
from tests.export.factories import tiny

ORT_MAGIC = b"ORTM"  # the flatbuffer file identifier of the ORT format (bytes 4-8), not an ONNX protobuf


@pytest.fixture(scope="module")
def exported(tmp_path_factory, images):
    from compress.run.deploy import export_formats

    folder = tmp_path_factory.mktemp("ort")
    model = tiny(0)
    record = export_formats(model, folder, ("ort-format-int8",), images, say_info=lambda s: None,
                            say_warn=lambda s: None)
    return model, folder, record


def test_the_registry_lists_it():
    assert ("ort-format", "ort-format-int8") == formats()[-2:]
    assert files()["ort-format"] == "model.ort" and files()["ort-format.int8"] == "model.int8.ort"


def test_ort_files_are_verified_and_the_int8_one_is_quantized(exported, images):
    model, folder, record = exported
    assert (folder / "model.int8.onnx").is_file()  # ort-format-int8 is made from the calibrated INT8 ONNX model
    for name in ("model.ort", "model.int8.ort"):
        assert (folder / name).read_bytes()[4:8] == ORT_MAGIC
    check = record.formats["ort-format"]["verification"]
    assert check["passed"] and check["max_abs_diff"] <= 1e-4 and check["n"] == len(images)
    assert record.formats["ort-format"]["size_bytes"] == (folder / "model.ort").stat().st_size
    int8 = record.formats["ort-format-int8"]["agreement_with_fp32"]
    assert int8["top1_agreement"] >= 0.8 and int8["max_abs_diff"] > 1e-4  # quantized, not the FP32 graph again
    assert json.loads((folder / "export.json").read_text())["ort-format-int8"]["source"] == "model.int8.onnx"


def test_bench_rows_run_the_ort_files_with_memory_and_size(exported):
    model, folder, _ = exported
    report = run_bench([BenchModel("m", model, artifacts={"ort-format": folder / "model.ort",
                                                          "ort-format.int8": folder / "model.int8.ort"})],
                       backends=("ort-format",), batches=(1,), input_shape=(3, 16, 16), threads=1, warmup=1,
                       iters=3, progress=False)
    rows = {r["precision"]: r for r in report["rows"]}
    assert set(rows) == {"fp32", "int8"}
    assert rows["fp32"]["size_bytes"] == (folder / "model.ort").stat().st_size
    assert rows["int8"]["size_bytes"] == (folder / "model.int8.ort").stat().st_size
    assert all(r["latency_ms"]["p50"] > 0 and r["memory"]["peak_rss_bytes"] > r["memory"]["baseline_rss_bytes"]
               for r in rows.values())


def test_predict_matches_the_onnx_file(exported, images):
    _, folder, _ = exported
    from_ort = get("ort-format").predict(folder / "model.ort", images[:4].numpy())
    from_onnx = get("onnxruntime").predict(folder / "model.onnx", images[:4].numpy())
    assert from_ort.shape == (4, 5) and abs(from_ort - from_onnx).max() <= 1e-4


def test_export_and_bench_cli(tiny_assets, tmp_path, capsys):
    from compress.api import prune

    out = tmp_path / "pruned"
    prune(str(tiny_assets / "ckpt.pt"), str(tiny_assets / "calib"), arch="digits", ratio=0.5, recover=False,
          out=str(out), round_to=8, progress=False, quiet=True)
    code, stdout, err = run_cli(["export", out, "--format", "ort-format", "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["ort-format"]["verification"]["passed"] and (out / "model.ort").is_file()
    code, stdout, err = run_cli(["bench", out, "--backend", "onnxruntime,ort-format", "--batch", "1", "--iters", "3",
                                 "--warmup", "1", "--min-seconds", "0", "--no-memory", "--json"], capsys)
    assert code == 0, err
    rows = {(r["model"], r["backend"]): r for r in json.loads(stdout)["rows"]}
    ort, onnx = rows[("compressed", "ort-format")], rows[("compressed", "onnxruntime")]
    assert ort["agreement"] == onnx["agreement"] and ort["accuracy_images"] == 40  # the same FP32 model
    assert rows[("original", "ort-format")]["agreement"] == 1.0  # the original's .ort, made by the bench
    assert (out / "bench" / "original.ort").is_file()
