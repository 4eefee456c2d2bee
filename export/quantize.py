"""FP32 ONNX -> INT8 ONNX with onnxruntime static quantization, QDQ format, per-channel weights.

Steps: ``quant_pre_process`` (shape inference + onnxruntime's basic graph optimizations, which
fold BatchNorm into Conv) to a temporary file, then ``quantize_static`` with calibration batches
from a reader (``calibrate.readers.TensorCalibrationReader``), then an atomic write.

Targets pick the integer types:

* ``cpu``: activations QUInt8 (asymmetric), weights QInt8 (symmetric, per channel), biases int32.
  This is the U8S8 combination onnxruntime's CPU kernels run fastest with AVX512-VNNI / AVX2;
  onnxruntime turns the Q/DQ pairs into QLinearConv / QLinearMatMul at session creation.
  On x86-64 CPUs without VNNI (AVX2 only, e.g. Zen 3) the weights use 7 bits (``reduce_range``):
  onnxruntime's U8S8 kernels there sum pairs of products in 16 bits, which saturates with 8-bit
  weights (:func:`saturating_u8s8`). The choice follows the machine that quantizes and checks the model.
* ``tensorrt``: activations and weights symmetric QInt8 (``ActivationSymmetric`` /
  ``WeightSymmetric``), biases left in float (``QuantizeBias=False``): TensorRT's explicit
  quantization supports only symmetric int8 scales with zero point 0, and fuses float bias itself.

Minmax calibration is the default; ``entropy`` is the real KL-divergence search (2048 bins, see
:func:`_entropy_ranges`) and ``percentile`` clips at 99.999 %. The tensorrt-target model also runs on the
CPU, but onnxruntime's fast x86 kernels want unsigned activations: use it for TensorRT only. What each
target and method measured (speed, size, top-1, opsets): ``benchmarks/RESULTS.md``, "INT8 vs FP32".
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from compress.export.cpu_load import PROC_CPUINFO, cpuinfo
from compress.export.errors import ExportError
from compress.util.atomic import atomic_file
from compress.util.text import one_line

METHODS = ("minmax", "entropy", "percentile")
SATURATION_NOTE = ("the tensorrt-target INT8 model was checked with onnxruntime on a CPU without VNNI, whose "
                   "int8 x int8 kernels saturate: its agreement with FP32 here understates what TensorRT gives")
TARGETS = ("cpu", "tensorrt")
TARGET_HELP = "cpu: uint8 activations (fast on x86 VNNI); tensorrt: symmetric int8 Q/DQ."  # --target's help


@dataclass
class QuantizeResult:
    """What :func:`quantize_int8` wrote."""

    path: Path
    method: str
    target: str
    activation_type: str  # "uint8" or "int8"
    weight_type: str  # "int8"
    per_channel: bool
    quantize_nodes: int  # QuantizeLinear nodes in the graph
    opset: int
    seconds: float
    size_bytes: int
    reduce_range: bool = False  # weights on 7 bits (see saturating_u8s8)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def quantize_int8(fp32_path: str | Path, out_path: str | Path, reader, *, method: str = "minmax",
                  target: str = "cpu", per_channel: bool = True, percentile: float = 99.999) -> QuantizeResult:
    """Quantize ``fp32_path`` to ``out_path`` (QDQ), calibrating on the batches ``reader`` gives.

    ``reader`` is an ``onnxruntime.quantization.CalibrationDataReader`` (it is rewound first).
    ``method``: ``minmax`` (fast, the default, best measured), ``entropy`` (KL-divergence
    thresholds, slow) or ``percentile`` (clip at ``percentile``). ``target``: ``cpu`` or
    ``tensorrt`` (see module doc).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from compress.export.onnx import strip_provenance  # here: it imports torch, and the CLI imports TARGETS

    if method not in METHODS:
        raise ExportError(f"unknown calibration method {method!r}", f"use one of {', '.join(METHODS)}")
    if target not in TARGETS:
        raise ExportError(f"unknown INT8 target {target!r}", f"use one of {', '.join(TARGETS)}")
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    if not fp32_path.is_file():
        raise ExportError(f"ONNX model not found: {fp32_path}", "export the FP32 model first")
    calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}[method]
    extra = {"WeightSymmetric": True}
    reduce_range = False
    if target == "cpu":
        act_type, act_name = QuantType.QUInt8, "uint8"
        extra["ActivationSymmetric"] = False
        reduce_range = saturating_u8s8()
    else:
        act_type, act_name = QuantType.QInt8, "int8"
        extra.update(ActivationSymmetric=True, QuantizeBias=False)
    if method == "percentile":
        extra["CalibPercentile"] = float(percentile)
    if method in ("entropy", "percentile") and target == "tensorrt":
        extra["CalibTensorRangeSymmetric"] = True

    if hasattr(reader, "rewind"):
        reader.rewind()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="compress-int8-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        out = Path(tmp) / "int8.onnx"
        _pre_process(quant_pre_process, fp32_path.resolve(), pre, Path(tmp))
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the calibrators print progress on stdout
                cache = None
                if method == "entropy":
                    cache = _entropy_ranges(pre, reader, Path(tmp), symmetric=target == "tensorrt")
                quantize_static(
                    str(pre), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=act_type, weight_type=QuantType.QInt8, calibrate_method=calib,
                    extra_options=extra, calibration_cache_path=cache, reduce_range=reduce_range,
                )
        except Exception as err:
            raise ExportError(f"INT8 quantization of {fp32_path.name} failed: {one_line(err, 300, typed=True)}",
                              "check that the calibration images match the model's input shape") from err
        proto = onnx.load(str(out))
        strip_provenance(proto)  # the FP32 file's are gone already; a file from elsewhere may carry them
        onnx.checker.check_model(proto)
        n_q = sum(1 for n in proto.graph.node if n.op_type == "QuantizeLinear")
        if n_q == 0:
            raise ExportError(f"quantization of {fp32_path.name} inserted no QuantizeLinear node",
                              "the model has no Conv/MatMul/Gemm onnxruntime can quantize")
        data = proto.SerializeToString()
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    with atomic_file(out_path, "wb") as handle:
        handle.write(data)
    return QuantizeResult(path=out_path, method=method, target=target, activation_type=act_name,
                          weight_type="int8", per_channel=per_channel, quantize_nodes=n_q, opset=int(opset),
                          seconds=time.perf_counter() - start, size_bytes=len(data), reduce_range=reduce_range)


def _pre_process(quant_pre_process, fp32: Path, pre: Path, tmp: Path) -> None:
    """``quant_pre_process`` into ``pre``: symbolic shape inference first; where it cannot complete (e.g. the
    shapes of an upsampling's Resize), ONNX's own shape inference, which static input shapes make enough.

    It runs inside ``tmp``: onnxruntime's symbolic shape inference writes ``sym_shape_infer_temp.onnx`` and a
    ``<uuid>.data`` file into the working directory and leaves them there when it fails."""
    errors = []
    for symbolic in (True, False):
        try:
            with _working_dir(tmp):
                quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=not symbolic)
            return
        except Exception as err:
            errors.append(one_line(err, 200, typed=True))
    raise ExportError(f"onnxruntime pre-processing failed on {fp32.name}: {'; then without symbolic shapes: '.join(errors)}",
                      "re-export the model (static C/H/W, opset >= 13)")


@contextlib.contextmanager
def _working_dir(path: Path):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def saturating_u8s8(path: str | Path | None = None, machine: str | None = None) -> bool:
    """True on an x86-64 CPU without VNNI, where onnxruntime multiplies uint8 activations by int8 weights with
    VPMADDUBSW, whose 16-bit pair sums can saturate (onnxruntime's quantization guide: use ``reduce_range``,
    7-bit weights, there). Measured on a Zen 3 EPYC (AVX2, no VNNI): the tiny test CNN's INT8 logits were
    0.58 off FP32 with 8-bit weights. VNNI CPUs and ARM accumulate in 32 bits and keep 8-bit weights."""
    if (machine or platform.machine()).lower() not in ("x86_64", "amd64"):
        return False
    flags = cpuinfo("flags", path or PROC_CPUINFO)
    if flags is None:
        return False  # unknown: keep full-range weights
    return not any(f in flags.split() for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


ENTROPY_BINS = 2048  # histogram bins for the KL search, as TensorRT's entropy calibrator uses
ENTROPY_QUANTIZED_BINS = 256  # int8 has 255 levels over the symmetric window [-T, T]


def _entropy_ranges(model: Path, reader, tmp: Path, *, symmetric: bool) -> Path:
    """KL-divergence (entropy) activation ranges, saved as an onnxruntime calibration cache.

    ``quantize_static`` runs its entropy calibrator with 128 histogram bins and 128 quantized bins,
    which leaves one candidate threshold, the full range: its "entropy" equals minmax (measured:
    identical scales on ResNet-20). The calibrator is therefore run here with 2048 bins, and its
    ranges handed to ``quantize_static`` through ``calibration_cache_path``.
    """
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator, save_tensors_data

    calibrator = create_calibrator(
        model, None, augmented_model_path=str(tmp / "augmented.onnx"), calibrate_method=CalibrationMethod.Entropy,
        extra_options={"num_bins": ENTROPY_BINS, "num_quantized_bins": ENTROPY_QUANTIZED_BINS, "symmetric": symmetric},
    )
    calibrator.collect_data(reader)
    ranges = calibrator.compute_data()
    reader.rewind()
    cache = tmp / "entropy-ranges.json"
    save_tensors_data(ranges, cache)
    return cache


def activation_types(path: str | Path) -> set[str]:
    """Element types of the QuantizeLinear outputs in ``path`` (e.g. ``{"uint8"}``)."""
    import onnx
    from onnx import helper

    proto = onnx.load(str(path))
    inits = {t.name: t for t in proto.graph.initializer}
    types = set()
    for node in proto.graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        zp = node.input[2] if len(node.input) > 2 else ""
        if zp in inits:
            types.add(helper.tensor_dtype_to_np_dtype(inits[zp].data_type).name)
        else:
            types.add("uint8")  # the ONNX default when no zero point is given
    return types
