"""TensorRT engines from ONNX (optional: ``pip install compress[tensorrt]`` and a CUDA GPU).

``tensorrt`` is imported inside the functions. Written against the TensorRT 10/11 Python API:
named I/O tensors (``num_io_tensors`` / ``get_tensor_name`` / ``get_tensor_mode``), one
optimization profile for the dynamic batch on input ``input``, ``set_memory_pool_limit`` for the
workspace, ``build_serialized_network``, and ``execute_async_v3`` with ``set_input_shape`` /
``set_tensor_address``.

Precision:

* INT8 comes from a Q/DQ ONNX model (``export.quantize.quantize_int8(..., target="tensorrt")``):
  explicit quantization. On TensorRT 10 ``BuilderFlag.INT8`` is set when the model has Q/DQ
  nodes; TensorRT 11 (strongly typed, no precision flags) takes the types from the graph as is.
  An implicit-quantization calibrator (``calibrate.readers.make_tensorrt_calibrator``) can be
  passed on TensorRT 10 only.
* FP16: TensorRT 10 sets ``BuilderFlag.FP16``. TensorRT 11 removed it: the ONNX model itself must
  be FP16, so ``build_engine(fp16=True)`` there converts it first with :func:`to_fp16_onnx`
  (float32 weights and arithmetic to float16, float32 input/output kept through Cast nodes).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from compress.export.errors import ExportError, TensorRTUnavailable
from compress.export.onnx import INPUT_NAME
from compress.util.atomic import atomic_file
from compress.util.text import one_line

NOT_INSTALLED = "TensorRT is not installed (pip install compress[tensorrt])"


def tensorrt_available() -> tuple[bool, str]:
    """(True, "TensorRT 10.x on <GPU>") or (False, one-line reason): needs the package AND a CUDA GPU."""
    try:
        import tensorrt as trt
    except ImportError:
        return False, NOT_INSTALLED
    except Exception as err:  # a broken install (missing libnvinfer) raises OSError and the like
        return False, f"TensorRT cannot be imported ({one_line(err, 160, typed=True)})"
    import torch

    if not torch.cuda.is_available():
        return False, f"no CUDA GPU (TensorRT {trt.__version__} is installed, torch.cuda.is_available() is False)"
    return True, f"TensorRT {trt.__version__} on {torch.cuda.get_device_name(0)}"


def require_tensorrt():
    ok, reason = tensorrt_available()
    if not ok:
        raise TensorRTUnavailable(reason, "TensorRT engines need the tensorrt package and a CUDA GPU")
    import tensorrt as trt

    return trt


@dataclass
class EngineInfo:
    """What :func:`build_engine` wrote and checked after deserializing the engine."""

    path: Path
    tensorrt_version: str
    precision: str  # "fp32", "fp16", "int8" (Q/DQ or calibrated), "int8+fp16"
    min_batch: int
    opt_batch: int
    max_batch: int
    io: dict[str, dict] = field(default_factory=dict)  # name -> {mode, dtype, shape}
    size_bytes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def build_engine(onnx_path: str | Path, engine_path: str | Path, *, min_batch: int = 1, opt_batch: int = 8,
                 max_batch: int = 32, fp16: bool = False, workspace_gib: float = 2.0,
                 int8_calibrator=None) -> EngineInfo:
    """Build a serialized TensorRT engine for ``onnx_path`` with a batch profile; write it atomically.

    Raises :class:`TensorRTUnavailable` without TensorRT or a GPU, :class:`ExportError` on parser
    or builder failure (with the parser's messages).
    """
    import time

    trt = require_tensorrt()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise ExportError(f"ONNX model not found: {onnx_path}", "export the model first")
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ExportError(f"batch profile must satisfy 1 <= min <= opt <= max, got {min_batch}/{opt_batch}/{max_batch}")
    start = time.perf_counter()
    notes: list[str] = []
    weak_typing = hasattr(trt.BuilderFlag, "FP16")  # TensorRT <= 10; 11 is strongly typed only
    qdq = has_qdq(onnx_path)
    with tempfile.TemporaryDirectory(prefix="compress-trt-") as tmp:
        source = onnx_path
        if fp16 and not weak_typing and not is_fp16_onnx(onnx_path):
            source = Path(tmp) / "fp16.onnx"
            to_fp16_onnx(onnx_path, source)
            notes.append("TensorRT 11 has no FP16 flag: built from an FP16 copy of the ONNX model (to_fp16_onnx)")
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10+
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(source)):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise ExportError(f"TensorRT cannot parse {onnx_path.name}: {'; '.join(errors)[:600] or 'unknown error'}",
                              "check the opset and operators against TensorRT's ONNX support matrix")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
        inp = network.get_input(0)
        if inp.name != INPUT_NAME:
            notes.append(f"network input is named {inp.name!r}, not {INPUT_NAME!r}")
        chw = tuple(int(d) for d in tuple(inp.shape)[1:])  # Dims supports indexing, not slicing
        if any(d < 0 for d in chw):
            raise ExportError(f"{onnx_path.name} has dynamic C/H/W {tuple(inp.shape)}", "export with a fixed image size")
        if tuple(inp.shape)[0] >= 0 and not min_batch == opt_batch == max_batch == tuple(inp.shape)[0]:
            raise ExportError(f"{onnx_path.name} has a fixed batch of {tuple(inp.shape)[0]}",
                              "export with dynamic_batch=True or build with min=opt=max batch equal to it")
        profile = builder.create_optimization_profile()
        profile.set_shape(inp.name, (min_batch, *chw), (opt_batch, *chw), (max_batch, *chw))
        config.add_optimization_profile(profile)
        precision = "fp32"
        if weak_typing:
            if fp16:
                config.set_flag(trt.BuilderFlag.FP16)
                precision = "fp16"
            if qdq or int8_calibrator is not None:
                config.set_flag(trt.BuilderFlag.INT8)
                precision = "int8+fp16" if fp16 else "int8"
            if int8_calibrator is not None:
                if qdq:
                    raise ExportError("a calibrator was given for a model that already has Q/DQ nodes",
                                      "use either the Q/DQ model or the FP32 model with a calibrator")
                config.int8_calibrator = int8_calibrator
                config.set_calibration_profile(profile)
        else:
            if int8_calibrator is not None:
                raise ExportError(f"TensorRT {trt.__version__} has no INT8 calibrators",
                                  "build from a Q/DQ model: export.quantize.quantize_int8(..., target='tensorrt')")
            precision = "int8" if qdq else ("fp16" if fp16 or is_fp16_onnx(onnx_path) else "fp32")
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ExportError(f"TensorRT failed to build an engine for {onnx_path.name}",
                              f"see TensorRT's log above; try a larger workspace (now {workspace_gib} GiB)")
        data = bytes(serialized)
    io = inspect_engine(data, trt)
    name = INPUT_NAME if INPUT_NAME in io else next(n for n, d in io.items() if d["mode"] == "input")
    if io[name]["dtype"] not in ("float32", "float16"):
        raise ExportError(f"engine input {name!r} has type {io[name]['dtype']}", "expected a float input")
    with atomic_file(engine_path, "wb") as handle:
        handle.write(data)
    return EngineInfo(path=engine_path, tensorrt_version=str(trt.__version__), precision=precision,
                      min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch, io=io, size_bytes=len(data),
                      seconds=time.perf_counter() - start, notes=notes)


def inspect_engine(data: bytes, trt=None) -> dict[str, dict]:
    """Deserialize an engine and list its I/O tensors: ``{name: {mode, dtype, shape}}``."""
    trt = trt or require_tensorrt()
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        raise ExportError("TensorRT cannot deserialize the engine it just built", "rebuild; check GPU memory")
    io = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = "input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output"
        io[name] = {"mode": mode, "dtype": _dtype_name(engine.get_tensor_dtype(name), trt),
                    "shape": [int(d) for d in engine.get_tensor_shape(name)]}
    return io


class TensorRTRunner:
    """Runs a serialized engine with ``execute_async_v3``; I/O buffers are CUDA torch tensors.

    ``runner(x)`` returns the first output for a batch ``x`` (any device); for timing, call
    :meth:`prepare` once and then :meth:`execute` (enqueue only, on torch's current stream).
    """

    def __init__(self, engine_path: str | Path):
        import torch

        trt = require_tensorrt()
        self._trt, self._torch = trt, torch
        self.path = Path(engine_path)
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ExportError(f"cannot load TensorRT engine {self.path}",
                              "engines only run with the TensorRT version and GPU they were built for; rebuild it")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        if len(self.inputs) != 1:
            raise ExportError(f"engine {self.path.name} has {len(self.inputs)} inputs", "expected one image input")
        self._buffers: dict[str, object] = {}
        self._shape = None

    def prepare(self, x) -> None:
        """Bind a CUDA copy of ``x`` as the input and allocate outputs for its batch size."""
        torch = self._torch
        name = self.inputs[0]
        want = _torch_dtype(self.engine.get_tensor_dtype(name), self._trt)
        x = x.detach().to("cuda", want).contiguous()
        self._buffers = {name: x}
        if not self.context.set_input_shape(name, tuple(x.shape)):
            raise ExportError(f"input shape {tuple(x.shape)} is outside the engine's profile",
                              "rebuild with a batch range that covers it")
        self.context.set_tensor_address(name, x.data_ptr())
        for out in self.outputs:
            shape = tuple(self.context.get_tensor_shape(out))
            buf = torch.empty(shape, dtype=_torch_dtype(self.engine.get_tensor_dtype(out), self._trt), device="cuda")
            self._buffers[out] = buf
            self.context.set_tensor_address(out, buf.data_ptr())
        self._shape = tuple(x.shape)

    def execute(self) -> None:
        """Enqueue one inference on torch's current CUDA stream (no synchronisation)."""
        stream = self._torch.cuda.current_stream().cuda_stream
        if not self.context.execute_async_v3(stream):
            raise ExportError(f"TensorRT execution failed for {self.path.name}")

    def __call__(self, x):
        if x is not self._buffers.get(self.inputs[0]):
            self.prepare(x)
        self.execute()
        self._torch.cuda.synchronize()
        return self._buffers[self.outputs[0]].float().cpu()


def has_qdq(path: str | Path) -> bool:
    """True when the ONNX graph holds QuantizeLinear/DequantizeLinear nodes (explicit quantization)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in proto.graph.node)


def is_fp16_onnx(path: str | Path) -> bool:
    """True when the model's float weights are float16 (e.g. written by :func:`to_fp16_onnx`)."""
    import onnx
    from onnx import TensorProto

    proto = onnx.load(str(path), load_external_data=False)
    types = {t.data_type for t in proto.graph.initializer}
    return TensorProto.FLOAT16 in types and TensorProto.FLOAT not in types


# Inputs that the ONNX spec requires to stay float32 whatever the data type (op_type -> input indices).
_KEEP_FLOAT32_INPUTS = {"Resize": {1, 2}, "Upsample": {1}}


def to_fp16_onnx(path: str | Path, out: str | Path) -> Path:
    """Write an FP16 copy of an FP32 ONNX model (onnx helpers only; ``onnxconverter_common`` not needed).

    Float32 initializers, ``Constant`` / ``ConstantOfShape`` values and ``Cast(to=float)`` become
    float16; the graph keeps float32 input/output through a Cast after the input and before
    each output, so callers feed and read float32. Shape-only inputs that must stay float32
    (Resize scales) are cast back. Checked with ``onnx.checker`` and shape inference.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    proto = onnx.load(str(path))
    graph = proto.graph
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node):
        raise ExportError(f"{Path(path).name} is a Q/DQ (INT8) model", "convert the FP32 model to FP16, not the INT8 one")
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16), attr.t.name))
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
    new_nodes = []
    for value in graph.input:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            inner = f"{value.name}__fp16"
            _rename_uses(graph.node, value.name, inner)
            new_nodes.append(helper.make_node("Cast", [value.name], [inner], to=TensorProto.FLOAT16,
                                              name=f"{value.name}__to_fp16"))
    keep = []
    for node in graph.node:
        for idx in _KEEP_FLOAT32_INPUTS.get(node.op_type, ()):
            if idx < len(node.input) and node.input[idx]:
                src = node.input[idx]
                node.input[idx] = f"{src}__fp32_{node.name or id(node)}"
                keep.append(helper.make_node("Cast", [src], [node.input[idx]], to=TensorProto.FLOAT))
        new_nodes.extend(keep)
        keep = []
        new_nodes.append(node)
    for value in graph.output:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            inner = f"{value.name}__fp16"
            for node in new_nodes:
                for i, o in enumerate(node.output):
                    if o == value.name:
                        node.output[i] = inner
            _rename_uses(new_nodes, value.name, inner)
            new_nodes.append(helper.make_node("Cast", [inner], [value.name], to=TensorProto.FLOAT,
                                              name=f"{value.name}__to_fp32"))
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.value_info[:]  # stale float32 annotations; re-inferred below
    try:
        proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
        onnx.checker.check_model(proto)
    except Exception as err:
        raise ExportError(f"FP16 conversion of {Path(path).name} produced an invalid model: {one_line(err, 200)}",
                          "the model uses an operator this converter does not handle; build FP32 or convert with NVIDIA ModelOpt AutoCast") from err
    with atomic_file(out, "wb") as handle:
        handle.write(proto.SerializeToString())
    return Path(out)


def _rename_uses(nodes, old: str, new: str) -> None:
    for node in nodes:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def _dtype_name(dtype, trt) -> str:
    names = {trt.float32: "float32", trt.float16: "float16", trt.int8: "int8", trt.int32: "int32", trt.bool: "bool"}
    for attr, name in (("int64", "int64"), ("bfloat16", "bfloat16"), ("uint8", "uint8")):
        if hasattr(trt, attr):
            names[getattr(trt, attr)] = name
    return names.get(dtype, str(dtype))


def _torch_dtype(dtype, trt):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "int8": torch.int8, "int32": torch.int32,
            "int64": torch.int64, "bool": torch.bool, "bfloat16": torch.bfloat16, "uint8": torch.uint8}[_dtype_name(dtype, trt)]


def trt_runner(engine_path: str | Path, example: torch.Tensor) -> Runner:
    """A runner executing a TensorRT engine on ``example`` (copied once to the GPU); synchronises."""
    import torch

    engine = TensorRTRunner(engine_path)
    x = example.detach().to("cuda", torch.float32).contiguous()
    engine.prepare(x)

    def run() -> None:
        engine.execute()
        torch.cuda.synchronize()

    return run
