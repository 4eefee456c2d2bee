"""THE table of ops: how each parameter-free op maps channels from its inputs to its outputs.

Every op the graph may meet is looked up here. An entry names a rule (registered in ``rules.py``)
and its static parameters. Layers with parameters (conv, linear, norms...) are not in this table:
each has a handler in ``compress/layers/`` (``compress.layers.registry``), attention in
``attention.py``. Anything absent from both is an *unknown* op and every channel that flows
through it is protected (reported with the op and the layer). Adding support for an op means
adding a line here (and, for a new kind of mapping, a rule).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from compress.graph import handlers
from compress.layers.base import LayerHandler


@dataclass(frozen=True)
class OpRule:
    rule: str  # name of the channel-mapping rule in rules.RULES
    params: dict[str, Any] = field(default_factory=dict)


def _rules(rule: str, *targets, **params) -> dict:
    return {t: OpRule(rule, params) for t in targets}


_ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign,
    nn.Tanhshrink, nn.LogSigmoid, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.Dropout3d, nn.AlphaDropout,
)
_POOLS = (
    nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Upsample, nn.UpsamplingNearest2d,
    nn.UpsamplingBilinear2d, nn.ZeroPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d,
)

MODULE_TABLE: dict[type, OpRule] = {  # parameter-free modules
    **_rules("elementwise", *_ACTIVATIONS),
    **_rules("spatial", *_POOLS),
    **_rules("pool_indices", nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d),  # plain spatial unless return_indices
    **_rules("unpool", nn.MaxUnpool1d, nn.MaxUnpool2d, nn.MaxUnpool3d),
    **_rules("flatten", nn.Flatten),
    **_rules("softmax", nn.Softmax, nn.LogSoftmax, nn.Softmax2d),
}

_ELEMENTWISE_FUNCTIONS = [
    F.relu, F.relu_, torch.relu, torch.relu_, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu,
    F.gelu, F.silu, F.mish, F.hardswish, F.hardsigmoid, F.hardtanh, F.sigmoid, torch.sigmoid,
    F.tanh, torch.tanh, F.softplus, F.dropout, F.dropout1d, F.dropout2d, F.dropout3d,
    torch.clamp, torch.clip, torch.abs, torch.exp, torch.neg, operator.neg,
]

FUNCTION_TABLE: dict[Any, OpRule] = {
    **_rules("elementwise", *_ELEMENTWISE_FUNCTIONS),
    **_rules("broadcast", operator.add, operator.iadd, torch.add, operator.sub, operator.isub,
             torch.sub, operator.mul, operator.imul, torch.mul, operator.truediv,
             operator.itruediv, torch.div),
    **_rules("spatial", F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d,
             F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
             F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d, F.interpolate),
    **_rules("pool_indices", F.max_pool1d_with_indices, F.max_pool2d_with_indices, F.max_pool3d_with_indices),
    **_rules("unpool", F.max_unpool1d, F.max_unpool2d, F.max_unpool3d),
    **_rules("flatten", torch.flatten),
    **_rules("cat", torch.cat, torch.concat, torch.concatenate),
    **_rules("stack", torch.stack),
    **_rules("chunk", torch.chunk),
    **_rules("split", torch.split),
    **_rules("getitem", operator.getitem),
    **_rules("index_select", torch.index_select),
    **_rules("reduce", torch.mean, torch.sum, torch.amax, torch.amin),
    **_rules("softmax", F.softmax, F.log_softmax, torch.softmax),
    **_rules("permute", torch.permute),
    **_rules("transpose", torch.transpose, torch.swapaxes, torch.swapdims),
    **_rules("unsqueeze", torch.unsqueeze),
    **_rules("reshape", torch.reshape),
    **_rules("pad", F.pad),
    **_rules("meta", getattr, len, torch._assert, torch.Size, hasattr, isinstance),
    **_rules("arith", operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge,
             operator.floordiv, operator.mod, operator.pow),
    # functional layers whose parameters are module attributes (compress.graph.functional)
    **_rules("fn_batchnorm", F.batch_norm, torch.batch_norm),
    **_rules("fn_batchnorm", F.instance_norm, torch.instance_norm, instance=True),
    **_rules("fn_groupnorm", F.group_norm),
    **_rules("fn_layernorm", F.layer_norm, torch.layer_norm),
    **_rules("fn_linear", F.linear),
    **_rules("fn_conv", F.conv1d, dims=1),
    **_rules("fn_conv", F.conv2d, dims=2),
    **_rules("fn_conv", F.conv3d, dims=3),
}


def _torchvision_functions() -> dict[Any, OpRule]:
    """torchvision wraps a few functions for fx; they appear as call_function nodes."""
    table: dict[Any, OpRule] = {}
    try:
        from torchvision.ops.stochastic_depth import stochastic_depth
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return table
    # eval: identity; train: multiplies each sample by 0 or 1/(1-p) -- channel-preserving
    table[stochastic_depth] = OpRule("elementwise")
    return table


FUNCTION_TABLE.update(_torchvision_functions())

METHOD_TABLE: dict[str, OpRule] = {
    **_rules("elementwise", "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "contiguous",
             "clone", "float", "half", "bfloat16", "double", "to", "type_as", "detach", "clamp",
             "clamp_", "clip", "abs", "exp", "neg"),
    **_rules("broadcast", "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_"),
    **_rules("flatten", "flatten"),
    **_rules("reshape", "view", "reshape"),
    **_rules("permute", "permute"),
    **_rules("transpose", "transpose", "swapaxes", "swapdims"),
    **_rules("unsqueeze", "unsqueeze"),
    **_rules("squeeze", "squeeze"),
    **_rules("reduce", "mean", "sum", "amax", "amin"),
    **_rules("softmax", "softmax", "log_softmax"),
    **_rules("chunk", "chunk"),
    **_rules("split", "split"),
    **_rules("index_select", "index_select"),
    **_rules("meta", "size", "dim", "numel"),
    **_rules("expand", "expand"),
}


def lookup_module(module: nn.Module) -> LayerHandler | OpRule | None:
    """A layer's handler (attention or a registered type, ``compress.graph.handlers``), else the
    table entry of its class: exact type, or a subclass that keeps its table ancestor's
    ``forward`` (an override could compute anything, e.g. weight standardisation, so it is unknown)."""
    if handlers.handler_for(module) is not None:
        return handlers.rule_for(module)
    for cls in type(module).__mro__:
        if cls in MODULE_TABLE:
            return MODULE_TABLE[cls] if type(module).forward is cls.forward else None
    return None


def lookup_function(fn: Any) -> OpRule | None:
    try:
        return FUNCTION_TABLE.get(fn)
    except TypeError:  # unhashable target
        return None


def lookup_method(name: str) -> OpRule | None:
    return METHOD_TABLE.get(name)
