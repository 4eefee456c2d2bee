"""One conv or linear layer, alone, at chosen widths: the unit a latency table times.

A :class:`LayerSpec` describes a layer as it sits in a network (its kind, hyper-parameters and the
shape of its input, batch excluded; the pruner's layer handlers build it from a module,
``compress.layers.registry.layer_spec``); :meth:`LayerSpec.at` fixes the input/output widths and the
batch. From that, :func:`onnx_layer` builds a one-node ONNX model (random weights, the same
attributes the exporter writes) and :func:`torch_layer` the matching ``nn`` module, so each
backend times exactly the operator it will run in the exported network.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn

KINDS = ("conv", "conv_transpose", "linear")


@dataclass(frozen=True)
class LayerSpec:
    kind: str  # "conv" | "conv_transpose" | "linear"
    in_shape: tuple[int, ...]  # the input's shape without the batch: (C, *spatial) or (*tokens, C)
    n_in: int  # original input channels
    n_out: int  # original output channels
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] | str = ()
    dilation: tuple[int, ...] = ()
    groups: int = 1
    output_padding: tuple[int, ...] = ()
    keeps_groups: bool = False  # a grouped conv whose groups all stay, narrower (compress.layers.conv)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown layer kind {self.kind!r}; expected one of {KINDS}")

    @property
    def grouped(self) -> bool:
        """Grouped/depthwise: whole groups go, so input and output widths move together."""
        return self.kind != "linear" and self.groups > 1 and not self.keeps_groups

    def groups_at(self, cin: int) -> int:
        if self.keeps_groups:
            return self.groups
        return max(1, self.groups * cin // self.n_in) if self.grouped else 1

    def key(self) -> str:
        fields = asdict(self)
        if not self.keeps_groups:  # the keys of tables measured before the field existed
            del fields["keeps_groups"]
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    def input_shape(self, cin: int, batch: int) -> tuple[int, ...]:
        if self.kind == "linear":
            return (batch, *self.in_shape[:-1], cin)
        return (batch, cin, *self.in_shape[1:])


def torch_layer(spec: LayerSpec, cin: int, cout: int) -> nn.Module:
    """An ``nn`` layer of ``spec`` with ``cin`` inputs and ``cout`` outputs (random weights)."""
    if spec.kind == "linear":
        return nn.Linear(cin, cout)
    dims = len(spec.kernel)
    kwargs = dict(kernel_size=spec.kernel, stride=spec.stride, padding=spec.padding, dilation=spec.dilation,
                  groups=spec.groups_at(cin))
    if spec.kind == "conv_transpose":
        cls = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[dims]
        return cls(cin, cout, output_padding=spec.output_padding, **kwargs)
    cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    return cls(cin, cout, **kwargs)


def onnx_layer(spec: LayerSpec, cin: int, cout: int, *, opset: int = 18):
    """A one-operator ONNX model (input ``x``, output ``y``, dynamic batch) of ``spec`` at these widths."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    in_dims = ["batch", *spec.input_shape(cin, 1)[1:]]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, in_dims)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * len(in_dims))
    if spec.kind == "linear":
        w = numpy_helper.from_array(rng.standard_normal((cin, cout), dtype=np.float32) * 0.01, "w")
        b = numpy_helper.from_array(np.zeros(cout, np.float32), "b")
        nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])]
        inits = [w, b]
    else:
        groups = spec.groups_at(cin)
        if spec.kind == "conv":
            w_shape, op = (cout, cin // groups, *spec.kernel), "Conv"
        else:
            w_shape, op = (cin, cout // groups, *spec.kernel), "ConvTranspose"
        w = numpy_helper.from_array(rng.standard_normal(w_shape, dtype=np.float32) * 0.01, "w")
        b = numpy_helper.from_array(np.zeros(cout, np.float32), "b")
        attrs = dict(kernel_shape=list(spec.kernel), strides=list(spec.stride), dilations=list(spec.dilation),
                     group=groups)
        attrs["pads"] = _pads(spec)
        if spec.kind == "conv_transpose" and any(spec.output_padding):
            attrs["output_padding"] = list(spec.output_padding)
        nodes = [helper.make_node(op, ["x", "w", "b"], ["y"], **attrs)]
        inits = [w, b]
    graph = helper.make_graph(nodes, "layer", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 10)
    onnx.checker.check_model(model)
    return model


def _pads(spec: LayerSpec) -> list[int]:
    """ONNX pads (all begins, then all ends), as torch pads: 'same' puts the odd one at the end."""
    if spec.padding == "valid":
        return [0] * (2 * len(spec.kernel))
    if spec.padding == "same":
        total = [d * (k - 1) for k, d in zip(spec.kernel, spec.dilation)]
        return [t // 2 for t in total] + [t - t // 2 for t in total]
    return list(spec.padding) * 2


def example_input(spec: LayerSpec, cin: int, batch: int) -> torch.Tensor:
    return torch.randn(spec.input_shape(cin, batch), generator=torch.Generator().manual_seed(0))
