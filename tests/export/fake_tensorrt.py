"""A minimal stand-in for the ``tensorrt`` module: records what ``export.tensorrt`` asks of it.

It mirrors only the calls made by ``build_engine`` (names and signatures from the TensorRT 10/11
Python API docs), so the build flow (flags, profile, workspace, parser errors, I/O checks) is
exercised on machines without a GPU. Real engines are tested in test_tensorrt.py where possible.
"""

from __future__ import annotations

import enum
import types


def make(version: str):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    calls: list[tuple] = []
    trt.calls = calls
    major = int(version.split(".")[0])

    class DataType(enum.Enum):
        FLOAT = 0
        HALF = 1
        INT8 = 2

    trt.DataType = DataType
    trt.float32, trt.float16, trt.int8, trt.int32, trt.bool = DataType.FLOAT, DataType.HALF, DataType.INT8, 3, 4
    flags = {"INT8": 1} if major < 11 else {}
    if major < 11:
        flags["FP16"] = 0
    trt.BuilderFlag = enum.Enum("BuilderFlag", flags or {"DEBUG": 9})
    trt.MemoryPoolType = enum.Enum("MemoryPoolType", {"WORKSPACE": 0})
    trt.TensorIOMode = enum.Enum("TensorIOMode", {"INPUT": 1, "OUTPUT": 2})

    class Logger:
        WARNING = 2

        def __init__(self, level):
            self.level = level

    trt.Logger = Logger

    class Input:
        name = "input"

        def __init__(self, shape):
            self.shape = shape

    class Network:
        def __init__(self):
            self.inputs = []

        def get_input(self, i):
            return self.inputs[i]

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            calls.append(("profile", name, lo, opt, hi))

    class Config:
        def set_memory_pool_limit(self, pool, size):
            calls.append(("workspace", pool.name, size))

        def add_optimization_profile(self, profile):
            calls.append(("add_profile",))

        def set_flag(self, flag):
            calls.append(("flag", flag.name))

        def set_calibration_profile(self, profile):
            calls.append(("calibration_profile",))

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags=0):
            calls.append(("create_network", flags))
            return Network()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            calls.append(("build",))
            return b"ENGINE"

    trt.Builder = Builder

    class OnnxParser:
        fail = False

        def __init__(self, network, logger):
            self.network = network
            self.num_errors = 0

        def parse_from_file(self, path):
            calls.append(("parse", path))
            if OnnxParser.fail:
                self.num_errors = 1
                return False
            import onnx

            dims = onnx.load(path).graph.input[0].type.tensor_type.shape.dim
            self.network.inputs.append(Input([d.dim_value if d.dim_value else -1 for d in dims]))
            return True

        def get_error(self, i):
            return "In node 3 (Conv): UNSUPPORTED_NODE: simulated"

    trt.OnnxParser = OnnxParser

    class Engine:
        num_io_tensors = 2

        def get_tensor_name(self, i):
            return ["input", "logits"][i]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name == "input" else trt.TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name):
            return DataType.FLOAT

        def get_tensor_shape(self, name):
            return [-1, 3, 16, 16] if name == "input" else [-1, 5]

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            calls.append(("deserialize", bytes(data)))
            return Engine()

    trt.Runtime = Runtime
    return trt
