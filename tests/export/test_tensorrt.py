"""TensorRT: engine tests run only where TensorRT and a CUDA GPU are present (skipped with the reason)."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from compress.export.errors import ExportError, TensorRTUnavailable
from compress.export.tensorrt import NOT_INSTALLED, build_engine, is_fp16_onnx, tensorrt_available, to_fp16_onnx

AVAILABLE, REASON = tensorrt_available()
needs_trt = pytest.mark.skipif(not AVAILABLE, reason=REASON)


def test_availability_reason_is_one_line_and_says_what_is_missing():
    ok, reason = tensorrt_available()
    assert isinstance(ok, bool) and reason and "\n" not in reason
    try:
        import tensorrt as trt
    except ImportError:
        assert (ok, reason) == (False, NOT_INSTALLED)
        return
    if torch.cuda.is_available():
        assert ok and reason == f"TensorRT {trt.__version__} on {torch.cuda.get_device_name(0)}"
    else:
        assert not ok and reason.startswith("no CUDA GPU") and trt.__version__ in reason


def test_build_engine_without_tensorrt_raises_one_line_reason(tmp_path, monkeypatch, tiny_onnx):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` now raises ImportError
    assert tensorrt_available() == (False, NOT_INSTALLED)
    with pytest.raises(TensorRTUnavailable) as err:
        build_engine(tiny_onnx.path, tmp_path / "m.engine")
    assert err.value.exit_code == 5 and err.value.message == NOT_INSTALLED and "\n" not in str(err.value)
    assert not (tmp_path / "m.engine").exists()


def test_calibrator_without_tensorrt_raises(monkeypatch, images):
    from compress.calibrate.errors import CalibrationError
    from compress.calibrate.readers import make_tensorrt_calibrator

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(CalibrationError, match="not installed"):
        make_tensorrt_calibrator(images, 8, None)


def test_fp16_onnx_conversion_runs_and_matches(tmp_path, tiny_onnx, images):
    out = to_fp16_onnx(tiny_onnx.path, tmp_path / "fp16.onnx")
    assert is_fp16_onnx(out) and not is_fp16_onnx(tiny_onnx.path)
    proto = onnx.load(str(out))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # I/O stay float32
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    x = images[:16].numpy()
    a = ort.InferenceSession(str(tiny_onnx.path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    b = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert b.dtype == np.float32 and 0 < np.abs(a - b).max() < 2e-2
    assert np.mean(a.argmax(1) == b.argmax(1)) >= 0.9


def test_fp16_conversion_refuses_int8_model(tmp_path, tiny_onnx, images):
    from compress.calibrate.readers import TensorCalibrationReader
    from compress.export.quantize import quantize_int8

    q = quantize_int8(tiny_onnx.path, tmp_path / "q.onnx", TensorCalibrationReader(images[:16], "input"))
    with pytest.raises(ExportError, match="Q/DQ"):
        to_fp16_onnx(q.path, tmp_path / "x.onnx")


# ------------------------------------------------------------------ GPU + TensorRT only
@pytest.mark.tensorrt
@needs_trt
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_builds_and_matches_torch(tmp_path, tiny_onnx, tiny_model, images, precision):
    from compress.calibrate.readers import TensorCalibrationReader
    from compress.export.quantize import quantize_int8
    from compress.export.tensorrt import TensorRTRunner

    source = tiny_onnx.path
    if precision == "int8":
        source = quantize_int8(source, tmp_path / "qdq.onnx", TensorCalibrationReader(images, "input"),
                               target="tensorrt").path
    info = build_engine(source, tmp_path / f"{precision}.engine", min_batch=1, opt_batch=4, max_batch=8,
                        fp16=precision == "fp16", workspace_gib=0.5)
    assert info.path.is_file() and info.size_bytes == info.path.stat().st_size
    assert info.io["input"]["mode"] == "input" and info.io["input"]["shape"][1:] == [3, 16, 16]
    assert info.io["logits"]["mode"] == "output" and info.io["input"]["dtype"] in ("float32", "float16")
    assert precision in info.precision
    runner = TensorRTRunner(info.path)
    with torch.no_grad():
        for batch in (1, 5):
            out = runner(images[:batch])
            ref = tiny_model(images[:batch])
            assert out.shape == ref.shape
            tol = {"fp32": 1e-3, "fp16": 3e-2, "int8": 0.5}[precision]
            assert (out - ref).abs().max().item() < tol
    with pytest.raises(ExportError):
        runner(images[:9])  # outside the profile's max batch


@pytest.mark.tensorrt
@needs_trt
def test_trt_runner_times(tmp_path, tiny_onnx, images):
    from compress.export.latency import time_interleaved
    from compress.export.tensorrt import trt_runner

    info = build_engine(tiny_onnx.path, tmp_path / "m.engine", max_batch=8, workspace_gib=0.5)
    stats = time_interleaved({"trt": trt_runner(info.path, images[:4])}, warmup=3, iters=10, batch=4)["trt"]
    assert stats.iters == 10 and stats.batch == 4
    assert 0 < stats.min <= stats.p50 <= stats.p90 <= stats.p99
    assert stats.throughput == pytest.approx(4 * 1000.0 / stats.p50)


@pytest.mark.tensorrt
@needs_trt
def test_tensorrt_calibrator_matches_api(tmp_path, images):
    import tensorrt as trt

    from compress.calibrate.errors import CalibrationError
    from compress.calibrate.readers import make_tensorrt_calibrator

    if int(trt.__version__.split(".")[0]) >= 11:
        with pytest.raises(CalibrationError, match="TensorRT 11|no INT8 calibrator"):
            make_tensorrt_calibrator(images, 8, tmp_path / "cache")
        return
    calib = make_tensorrt_calibrator(images[:20], 8, tmp_path / "calib.cache")
    assert isinstance(calib, trt.IInt8EntropyCalibrator2) and calib.get_batch_size() == 8
    # each batch is the next 8 images, in order, at the device address handed to TensorRT
    for start in (0, 8):
        pointers = calib.get_batch(["input"])
        assert pointers == [calib._device.data_ptr()]
        torch.testing.assert_close(calib._device.cpu(), images[start:start + 8], rtol=0, atol=0)
    assert calib.get_batch(["input"]) is None  # 20 images: two full batches of 8, the tail is not given
    assert calib.read_calibration_cache() is None
    calib.write_calibration_cache(b"abc")
    assert calib.read_calibration_cache() == b"abc"



# ------------------------------------------------------------------ build flow against a fake module
@pytest.fixture
def fake_trt(monkeypatch):
    """Install a recording stand-in for ``tensorrt`` (version chosen by the test) and pretend a GPU."""
    from tests.export import fake_tensorrt

    def install(version):
        module = fake_tensorrt.make(version)
        monkeypatch.setitem(sys.modules, "tensorrt", module)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Fake GPU")
        return module

    return install


def test_build_flow_tensorrt10_qdq_sets_int8_and_profile(tmp_path, fake_trt, tiny_onnx, images):
    from compress.calibrate.readers import TensorCalibrationReader
    from compress.export.quantize import quantize_int8

    trt = fake_trt("10.9.0")
    assert tensorrt_available() == (True, "TensorRT 10.9.0 on Fake GPU")
    q = quantize_int8(tiny_onnx.path, tmp_path / "q.onnx", TensorCalibrationReader(images[:16], "input"), target="tensorrt")
    info = build_engine(q.path, tmp_path / "e.engine", min_batch=1, opt_batch=4, max_batch=16, fp16=True,
                        workspace_gib=0.5)
    assert ("workspace", "WORKSPACE", 1 << 29) in trt.calls
    assert ("profile", "input", (1, 3, 16, 16), (4, 3, 16, 16), (16, 3, 16, 16)) in trt.calls
    assert ("flag", "FP16") in trt.calls and ("flag", "INT8") in trt.calls
    assert info.precision == "int8+fp16" and info.io["input"]["dtype"] == "float32"
    assert (tmp_path / "e.engine").read_bytes() == b"ENGINE" and info.size_bytes == 6


def test_build_flow_tensorrt11_converts_fp16_and_sets_no_flags(tmp_path, fake_trt, tiny_onnx):
    trt = fake_trt("11.4.0")
    info = build_engine(tiny_onnx.path, tmp_path / "e.engine", fp16=True)
    assert not [c for c in trt.calls if c[0] == "flag"]
    parsed = next(c[1] for c in trt.calls if c[0] == "parse")
    assert parsed != str(tiny_onnx.path)  # the FP16 copy was parsed
    assert info.precision == "fp16" and any("to_fp16_onnx" in n for n in info.notes)
    with pytest.raises(ExportError, match="no INT8 calibrators"):
        build_engine(tiny_onnx.path, tmp_path / "x.engine", int8_calibrator=object())


def test_build_flow_reports_parser_errors(tmp_path, fake_trt, tiny_onnx):
    trt = fake_trt("10.9.0")
    trt.OnnxParser.fail = True
    with pytest.raises(ExportError, match="UNSUPPORTED_NODE: simulated") as err:
        build_engine(tiny_onnx.path, tmp_path / "e.engine")
    assert "\n" not in str(err.value) and not (tmp_path / "e.engine").exists()
    with pytest.raises(ExportError, match="1 <= min <= opt <= max"):
        build_engine(tiny_onnx.path, tmp_path / "e.engine", min_batch=8, opt_batch=4)
