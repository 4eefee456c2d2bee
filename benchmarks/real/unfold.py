"""Trained float weights from INT8 files (an OpenVINO IR, a quantized TorchScript), as state dicts of unfused models.

The snapshots that `fetch` brings hold no file of 4 MiB or more, so the 6 MB ``yolov8n.pt`` that many
repositories carry never arrives; the 3.2 MB INT8 OpenVINO export of the same checkpoint does. Its
convolutions keep their PyTorch module paths in their names (``__module.model.2.cv1.conv/...``); each weight
is ``int8 constant x per-channel scale`` and each bias an ``Add`` constant, BatchNorm already folded in.

What this writes is the Ultralytics model built from its yaml with:

- every convolution's weight the dequantized INT8 weight (weight-only quantization: the IR's activation
  FakeQuantize nodes are not applied, so this model is the float network the INT8 export was made from,
  up to 8-bit rounding of each weight);
- every BatchNorm *unfolded* so the float function is exactly the folded one (``weight = sqrt(var + eps)``,
  ``bias = folded bias + mean``) while its running statistics are the real per-channel mean and variance
  of that conv's output on the given unlabeled images: train-mode BatchNorm (recovery) then normalises as
  a trained network's would, instead of by statistics that do not exist.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

_NAME = re.compile(r"^__module\.(.+?)/aten::_?convolution")


def ir_convolutions(xml: Path) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Module path -> (float weight, bias or None) for every Convolution of the IR."""
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() not in ("Convolution", "GroupConvolution"):
            continue
        match = _NAME.match(op.get_friendly_name())
        if match is None:
            raise SystemExit(f"convolution {op.get_friendly_name()!r} does not name its module")
        weight = _constant_value(op.input_value(1).get_node())
        if op.get_type_name() == "GroupConvolution":  # (groups, out/groups, in/groups, kh, kw)
            weight = weight.reshape(-1, *weight.shape[2:])
        bias = None
        for target in op.output(0).get_target_inputs():
            node = target.get_node()
            if node.get_type_name() == "Add":
                other = node.input_value(1 - target.get_index()).get_node()
                bias = _constant_value(other).reshape(-1)
        out[match.group(1)] = (weight.astype(np.float32), None if bias is None else bias.astype(np.float32))
    return out


def _constant_value(node) -> np.ndarray:
    """The value of a constant subgraph: Constant, Convert, and Subtract/Multiply by constants (dequantization)."""
    kind = node.get_type_name()
    if kind == "Constant":
        return node.get_data().astype(np.float64)
    if kind == "Convert":
        return _constant_value(node.input_value(0).get_node())
    if kind in ("Multiply", "Subtract"):
        a = _constant_value(node.input_value(0).get_node())
        b = _constant_value(node.input_value(1).get_node())
        return a * b if kind == "Multiply" else a - b
    if kind == "Reshape":
        value = _constant_value(node.input_value(0).get_node())
        return value.reshape(tuple(node.get_output_shape(0)))
    raise SystemExit(f"weight of {node.get_friendly_name()!r} comes through a {kind}, not a constant")


def unfolded_state_dict(cfg: str, xml: Path, images: list[torch.Tensor], nc: int = 80) -> dict[str, torch.Tensor]:
    """The state dict of ``cfg``'s Ultralytics model carrying the IR's weights, BatchNorm unfolded on ``images``."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(cfg, nc=nc, verbose=False).eval()
    skip = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and "dfl" in n]  # fixed, not learnt
    return load_folded(model, ir_convolutions(xml), images, fixed=skip)


def quantized_torchscript(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Module path -> (dequantized weight, bias) of every quantized conv and linear of a TorchScript file.

    ``optimize_for_mobile`` hoists each conv's packed parameters to an attribute named after the module
    (``_jit_pass_hoist_conv_packed_params.features.1.conv.0.0._packed_params.2``); linears keep their modules.
    """
    model = torch.jit.load(str(path), map_location="cpu")
    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for name in re.findall(r'getattr\(self, "(_jit_pass_hoist_conv_packed_params\.[^"]+)"\)', model.code):
        module = name[len("_jit_pass_hoist_conv_packed_params."):].rsplit("._packed_params", 1)[0]
        weight, bias = torch.ops.quantized.conv2d_unpack(model._c.getattr(name))
        out[module] = _float(weight, bias)
    for name, sub in model.named_modules():
        if sub.original_name == "Linear" and hasattr(sub, "_packed_params"):
            weight, bias = torch.ops.quantized.linear_unpack(sub._packed_params._c.getattr("_packed_params"))
            out[name] = _float(weight, bias)
    return out


def _float(weight: torch.Tensor, bias: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray | None]:
    return weight.dequantize().numpy().astype(np.float32), None if bias is None else bias.detach().numpy().astype(np.float32)


def load_folded(model: nn.Module, weights: dict[str, tuple[np.ndarray, np.ndarray | None]],
                images: list[torch.Tensor], fixed: list[str] = ()) -> dict[str, torch.Tensor]:
    """``model`` with each conv/linear at a path of ``weights`` set to it, its BatchNorm unfolded on ``images``.

    A conv's BatchNorm is its parent's ``bn`` (Ultralytics ``Conv``) or the module after it in a Sequential
    (torchvision ``Conv2dNormActivation``, ``InvertedResidual.conv``). Every conv and linear of ``model`` must
    get a weight (except ``fixed`` ones), and every weight a layer of the same shape.
    """
    model.eval()
    modules = dict(model.named_modules())
    norms: dict[str, nn.BatchNorm2d] = {}
    for path, (weight, bias) in weights.items():
        layer = modules.get(path)
        if not isinstance(layer, (nn.Conv2d, nn.Linear)) or tuple(layer.weight.shape) != weight.shape:
            raise SystemExit(f"weight {path} {weight.shape} has no layer of that shape in {type(model).__name__}")
        layer.weight.data = torch.from_numpy(weight)
        b = torch.zeros(weight.shape[0]) if bias is None else torch.from_numpy(bias)
        bn = _norm_after(modules, path)
        if isinstance(bn, nn.BatchNorm2d) and layer.bias is None:
            bn.weight.data.fill_(1.0)
            bn.bias.data = b.clone()
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)  # exactly the folded layer until the statistics are measured
            norms[path] = bn
        elif layer.bias is not None:
            layer.bias.data = b
        elif bias is not None and bool((b != 0).any()):
            raise SystemExit(f"weight {path} has a bias that {type(model).__name__} has no place for")
    missing = [n for n, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Linear)) and n not in weights
               and n not in fixed]
    if missing:
        raise SystemExit(f"{len(missing)} layers of {type(model).__name__} have no weight, e.g. {missing[0]}")
    _measure_statistics(model, norms, images)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _norm_after(modules: dict[str, nn.Module], path: str) -> nn.Module | None:
    parent_path, _, last = path.rpartition(".")
    parent = modules.get(parent_path)
    if parent is None:
        return None
    if isinstance(getattr(parent, "bn", None), nn.BatchNorm2d):
        return parent.bn
    if isinstance(parent, nn.Sequential) and last.isdigit() and int(last) + 1 < len(parent):
        return parent[int(last) + 1]
    return None


def _measure_statistics(model: nn.Module, norms: dict[str, nn.BatchNorm2d], images: list[torch.Tensor]) -> None:
    """Per-channel mean and variance of each BatchNorm's input over ``images``; then the unfolding."""
    sums: dict[str, list[torch.Tensor]] = {}

    def hook(name):
        def record(_module, inputs):
            x = inputs[0].double()
            s = sums.setdefault(name, [torch.zeros(x.shape[1], dtype=torch.float64)] * 2 + [0])
            s[0] = s[0] + x.sum((0, 2, 3))
            s[1] = s[1] + (x * x).sum((0, 2, 3))
            s[2] += x.numel() // x.shape[1]
        return record

    handles = [bn.register_forward_pre_hook(hook(n)) for n, bn in norms.items()]
    with torch.no_grad():
        for batch in torch.split(torch.stack(images), 8):
            model(batch)
    for h in handles:
        h.remove()
    for name, bn in norms.items():
        total, squares, count = sums[name]
        mean = total / count
        var = (squares / count - mean * mean).clamp_min(0.0)
        bias = bn.bias.data.double()  # the folded bias, still in place
        bn.running_mean.copy_(mean.float())
        bn.running_var.copy_(var.float())
        bn.weight.data.copy_((var + bn.eps).sqrt().float())
        bn.bias.data.copy_((bias + mean).float())
