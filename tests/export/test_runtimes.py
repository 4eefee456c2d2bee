"""Runtime plugins (export.runtimes): the registry, a missing extra, and OpenVINO / ExecuTorch where installed."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from compress.export.bench import BenchModel, run_bench
from compress.export.errors import ExportError, RuntimeUnavailable
from compress.export.runtimes import NAMES, get
from tests.cli_helpers import assert_refused_before_writing, run_cli
from tests.export.factories import tiny


def test_every_runtime_is_one_module_behind_the_same_interface():
    assert {"torch", "onnxruntime", "tensorrt", "openvino", "executorch", "aoti", "torch-compile"} <= set(NAMES)
    for name in NAMES:
        runtime = get(name)
        assert runtime.name == name and runtime is get(name)
        ok, reason = runtime.available()
        assert isinstance(ok, bool) and reason
    with pytest.raises(ExportError, match="unknown runtime 'coreml'"):
        get("coreml")


@pytest.mark.parametrize("name", ["openvino", "executorch"])
def test_a_missing_extra_is_named(name, monkeypatch):
    monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError, as when not installed
    ok, reason = get(name).available()
    assert not ok and f"pip install 'compress[{name}]'" in reason
    with pytest.raises(RuntimeUnavailable) as err:
        get(name).require()
    assert err.value.exit_code == 5
    report = run_bench([BenchModel("m", tiny(0))], backends=(name,), batches=(1,), input_shape=(3, 16, 16),
                       threads=1, warmup=1, iters=2, measure_memory=False, progress=False)
    assert report["rows"] == [] and f"compress[{name}]" in report["skipped"][0]["reason"]


@pytest.mark.parametrize("args", [["export", "{ckpt}", "--arch", "digits", "--format", "onnx,openvino"],
                                  ["bench", "{ckpt}", "{ckpt}", "--arch", "digits", "--backend", "openvino"],
                                  ["prune", "{ckpt}", "--arch", "digits", "--calib", "{calib}", "--target-speedup",
                                   "1.2", "--backend", "openvino"]])
def test_commands_without_the_extra_say_which_to_install(args, tiny_assets, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert_refused_before_writing(args, tiny_assets, tmp_path / "out", capsys, "pip install 'compress[openvino]'")


# ---------------------------------------------------------------- OpenVINO
@pytest.fixture(scope="module")
def ov_export(tmp_path_factory, images):
    pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'compress[openvino]')")
    from compress.run.deploy import export_formats

    folder = tmp_path_factory.mktemp("ov")
    model = tiny(0)
    record = export_formats(model, folder, ("onnx", "openvino", "openvino-int8"), images, say_info=lambda s: None,
                            say_warn=lambda s: None)
    return model, folder, record


def test_openvino_ir_is_verified_against_pytorch(ov_export, images):
    model, folder, record = ov_export
    assert (folder / "model.openvino.xml").is_file() and (folder / "model.openvino.bin").is_file()
    check = record.formats["openvino"]["verification"]
    assert check["passed"] and check["max_abs_diff"] <= 1e-4 and check["top1_agreement"] == 1.0
    assert (folder / "model.int8.onnx").is_file()  # openvino-int8 runs the calibrated Q/DQ model
    int8 = record.formats["openvino-int8"]
    assert int8["source"] == "model.int8.onnx" and int8["agreement_with_fp32"]["n"] == len(images)
    assert int8["agreement_with_fp32"]["top1_agreement"] >= 0.8
    ov = get("openvino")
    got = ov.predict(folder / "model.openvino.xml", images[:5].numpy())
    assert np.allclose(got, model(images[:5]).detach().numpy(), atol=1e-4)


def test_openvino_int8_really_runs_quantized(ov_export, images):
    """Not the FP32 graph again: INT8 logits differ from FP32 ones, by a quantization-sized amount."""
    _, folder, _ = ov_export
    ov = get("openvino")
    a, b = (ov.predict(folder / name, images.numpy()) for name in ("model.openvino.xml", "model.int8.openvino.xml"))
    assert 1e-4 < np.abs(a - b).max() < 0.5 * np.abs(a).max()


def test_bench_has_openvino_rows_with_memory_and_size(ov_export):
    model, folder, _ = ov_export
    original = tiny(0, width=32)
    models = [BenchModel("original", original, loader="tests.export.factories:tiny", loader_args=(0, 32),
                         macs=4, artifacts={"openvino": _ir(original, folder)}),
              BenchModel("compressed", model, macs=1, artifacts={"openvino": folder / "model.openvino.xml",
                                                                  "openvino.int8": folder / "model.int8.openvino.xml"})]
    report = run_bench(models, backends=("openvino",), batches=(1, 4), input_shape=(3, 16, 16), threads=1, warmup=1,
                       iters=3, progress=False)
    rows = {(r["model"], r["precision"], r["batch"]): r for r in report["rows"]}
    assert set(rows) == {(m, p, b) for m, p in [("original", "fp32"), ("compressed", "fp32"), ("compressed", "int8")]
                         for b in (1, 4)}
    files = {"original": "original.openvino", "compressed": "model.openvino"}
    for (name, precision, _), row in rows.items():
        assert row["latency_ms"]["p50"] > 0 and row["memory"]["model_rss_bytes"] >= 0
        stem = files[name] if precision == "fp32" else "model.int8.openvino"
        assert row["size_bytes"] == sum((folder / f"{stem}{ext}").stat().st_size for ext in (".xml", ".bin"))
    speed = {(c["model"], c["precision"], c["batch"]): c for c in report["comparisons"]}
    assert speed[("compressed", "fp32", 4)]["mac_ratio"] == 4.0 and speed[("compressed", "int8", 1)]["speedup"] > 0
    assert report["environment"]["openvino"]


def _ir(model, folder):
    from compress.export.onnx import export_onnx

    onnx_path = export_onnx(model, torch.randn(2, 3, 16, 16), folder / "original.onnx").path
    return get("openvino").convert(onnx_path, folder / "original.openvino.xml")


def test_latency_table_times_layers_on_openvino():
    pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'compress[openvino]')")
    from compress.export.layer_models import LayerSpec
    from compress.export.layer_timing import make_timer

    timer = make_timer("openvino", batch=1, threads=1)
    assert timer.backend == "openvino" and timer.describe()["openvino"]
    spec = LayerSpec("conv", (16, 8, 8), 16, 16, (3, 3), (1, 1), (1, 1), (1, 1))
    assert timer.time_layer(spec, 16, 16) > 0
    assert timer.time_model(tiny(0), timer.example((3, 16, 16)), seconds=0.1) > 0


# ---------------------------------------------------------------- ExecuTorch
def test_executorch_pte_fp32_and_int8_are_verified(tmp_path, images):
    pytest.importorskip("executorch", reason="ExecuTorch is not installed (pip install 'compress[executorch]')")
    from compress.run.deploy import export_formats

    model = tiny(0)
    record = export_formats(model, tmp_path, ("onnx", "executorch", "executorch-int8"), images,
                            say_info=lambda s: None, say_warn=lambda s: None)
    check = record.formats["executorch"]["verification"]
    assert check["passed"] and check["max_abs_diff"] <= 1e-4
    int8 = record.formats["executorch-int8"]["agreement_with_fp32"]
    assert int8["top1_agreement"] >= 0.8 and int8["max_abs_diff"] > 1e-4  # quantized, not the FP32 graph again
    et = get("executorch")
    report = run_bench([BenchModel("m", model, artifacts={"executorch": tmp_path / "model.pte",
                                                          "executorch.int8": tmp_path / "model.int8.pte"})],
                       backends=("executorch",), batches=(1, 32), input_shape=(3, 16, 16), threads=1, warmup=1,
                       iters=3, progress=False)
    assert {(r["precision"], r["batch"]) for r in report["rows"]} == {("fp32", 1), ("fp32", 32), ("int8", 1),
                                                                      ("int8", 32)}
    assert all(r["memory"]["peak_rss_bytes"] > 0 for r in report["rows"])
    assert et.predict(tmp_path / "model.pte", images[:3].numpy()).shape == (3, 5)


def test_export_and_bench_cli_give_openvino_rows_with_their_own_agreement(tiny_assets, tmp_path, capsys):
    pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'compress[openvino]')")
    import json

    from compress.api import prune

    out = tmp_path / "pruned"
    prune(str(tiny_assets / "ckpt.pt"), str(tiny_assets / "calib"), arch="digits", ratio=0.5, recover=False,
          out=str(out), round_to=8, progress=False, quiet=True)
    code, stdout, err = run_cli(["export", out, "--format", "openvino,openvino-int8", "--json"], capsys)
    assert code == 0, err
    record = json.loads(stdout)
    assert record["openvino"]["verification"]["passed"] and (out / "model.int8.openvino.xml").is_file()
    code, stdout, err = run_cli(["bench", out, "--backend", "onnxruntime,openvino", "--batch", "1", "--iters", "3",
                                 "--warmup", "1", "--min-seconds", "0", "--no-memory", "--json"], capsys)
    assert code == 0, err
    report = json.loads(stdout)
    rows = {(r["model"], r["backend"], r["precision"]): r for r in report["rows"]}
    assert {("original", "openvino", "fp32"), ("compressed", "openvino", "fp32"),
            ("compressed", "openvino", "int8")} <= set(rows)
    assert rows[("original", "openvino", "fp32")]["agreement"] == 1.0  # the original's IR against itself in PyTorch
    ov, ort = rows[("compressed", "openvino", "fp32")], rows[("compressed", "onnxruntime", "fp32")]
    assert ov["agreement"] == ort["agreement"] and ov["accuracy_images"] == 40  # same FP32 model, same images
    assert 0 <= rows[("compressed", "openvino", "int8")]["agreement"] <= 1
    assert "top-1 agreement" in (out / "report.md").read_text()
