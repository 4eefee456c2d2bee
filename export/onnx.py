"""PyTorch -> ONNX: one self-contained ``.onnx`` file with a dynamic batch dimension.

The ``torch.export``-based exporter (``torch.onnx.export(..., dynamo=True)``) is tried first; if it
fails, the legacy TorchScript exporter (``dynamo=False``) is used and the failure is recorded in
``OnnxExport.warnings`` and logged. Input is named ``input`` (N, C, H, W; N dynamic, C/H/W fixed),
output ``logits``.

Opset. :data:`DEFAULT_OPSET` is 18, the lowest opset the dynamo exporter emits natively (lower
ones go through its version converter). With onnxruntime 1.32's static QDQ quantization, opsets
18, 20, 21 and 23 gave identical quantized graphs, session-time fusions (QLinearConv) and latency
here (measured on CIFAR ResNet-20, see ``export/quantize.py``); 18 is kept because TensorRT 10's
ONNX parser and older onnxruntime builds support it fully, while opset >= 21 only adds 4/16-bit
Q/DQ types that the INT8 path does not use (``quantize_static`` itself bumps to 21 when asked for
16-bit or 4-bit types). The TorchScript fallback uses opset 17, its newest well-tested one.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from compress.export.errors import ExportError
from compress.util.atomic import atomic_file
from compress.util.modules import device_of, eval_mode
from compress.util.text import one_line

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
TORCHSCRIPT_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
MAX_BATCH = 65536  # upper bound of the dynamic batch dimension handed to torch.export


@dataclass
class OnnxExport:
    """What :func:`export_onnx` wrote."""

    path: Path
    exporter: str  # "dynamo" or "torchscript"
    opset: int
    warnings: list[str] = field(default_factory=list)
    dynamic_batch: bool = True

    def to_dict(self) -> dict:
        return {"path": str(self.path), "exporter": self.exporter, "opset": self.opset,
                "warnings": list(self.warnings), "dynamic_batch": self.dynamic_batch}


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | Path, *, opset: int | None = None,
                dynamic_batch: bool = True) -> OnnxExport:
    """Export ``model`` (run in eval mode, left unchanged) to ``path`` atomically.

    ``example`` is one input batch (N, C, H, W) (moved to the model's device); its C/H/W become fixed. The file holds
    its weights (no external ``.data`` file) and passes ``onnx.checker``. Raises
    :class:`ExportError` when neither exporter can handle the model.
    """
    import onnx

    path = Path(path)
    if not isinstance(example, torch.Tensor) or example.dim() < 1:
        raise ExportError("the example input must be a tensor with a batch dimension",
                          "pass one preprocessed batch, e.g. torch.randn(1, 3, 224, 224)")
    example = example.detach().to(device_of(model), torch.float32)
    if dynamic_batch and example.shape[0] == 1:
        # torch.export specialises size-1 dimensions; a batch of 2 keeps the batch symbolic.
        example = example.repeat(2, *([1] * (example.dim() - 1)))
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="compress-onnx-") as tmp:
        tmp_path = Path(tmp) / "model.onnx"
        with eval_mode(model):
            try:
                used_opset = _export_dynamo(model, example, tmp_path, opset or DEFAULT_OPSET, dynamic_batch)
                exporter = "dynamo"
            except Exception as err:  # any exporter failure: fall back, say why
                reason = one_line(err, 300, typed=True)
                note = f"torch.export-based ONNX exporter failed ({reason}); used the TorchScript exporter"
                log.warning(note)
                notes.append(note)
                try:
                    used_opset = _export_torchscript(model, example, tmp_path, opset or TORCHSCRIPT_OPSET,
                                                     dynamic_batch)
                except Exception as err2:
                    raise ExportError(
                        f"cannot export {type(model).__name__} to ONNX: dynamo: {reason}; torchscript: {one_line(err2, 300, typed=True)}",
                        "simplify the forward (no data-dependent control flow) or export a traced submodule",
                    ) from err2
                exporter = "torchscript"
        proto = onnx.load(str(tmp_path), load_external_data=True)  # inlines any .data the exporter wrote
        if _uses_external_data(proto):
            raise ExportError(f"exported model of {type(model).__name__} still references external data",
                              "the model may exceed the 2 GiB protobuf limit")
        _check_io_names(proto)
        strip_provenance(proto)
        try:
            onnx.checker.check_model(proto, full_check=True)
        except Exception as err:
            raise ExportError(f"the exported ONNX model fails onnx.checker: {one_line(err, 300, typed=True)}",
                              "report the model; try opset=17 for the TorchScript exporter") from err
        data = proto.SerializeToString()
    with atomic_file(path, "wb") as handle:
        handle.write(data)
    return OnnxExport(path=path, exporter=exporter, opset=used_opset, warnings=notes, dynamic_batch=dynamic_batch)


# Per-node debugging records the dynamo exporter writes that name where the builder's Python was, not what the
# model computes: the call stack with absolute file paths (``stack_trace``), and the qualified names of the
# modules' classes (``class_hierarchy``, ``namespace``), which for an ``--arch path/to/file.py:fn`` model hold
# ``compress_user_arch_<hash of the file's absolute path>``. No runtime reads node metadata; the rest of it
# (``name_scopes``: the module path such as ``layer1.0.conv1``, ``fx_node``, the optimizer's notes) depends
# on the model alone and is kept for tools such as Netron.
PROVENANCE_KEYS = frozenset({"pkg.torch.onnx.stack_trace", "pkg.torch.onnx.class_hierarchy", "namespace"})


def strip_provenance(proto) -> int:
    """Remove :data:`PROVENANCE_KEYS` from every node, value and graph (subgraphs and functions too) of
    ``proto``, in place, and the nodes' doc strings (the TorchScript exporter's source lines); the number of
    entries removed. The written file then holds no local path and is the same wherever it was built."""
    removed = 0

    def clean(props) -> None:
        nonlocal removed
        keep = [(p.key, p.value) for p in props if p.key not in PROVENANCE_KEYS]
        if len(keep) != len(props):
            removed += len(props) - len(keep)
            del props[:]
            for key, value in keep:
                props.add(key=key, value=value)

    def nodes(node_list) -> None:
        nonlocal removed
        for node in node_list:
            clean(node.metadata_props)
            if node.doc_string:
                node.doc_string = ""
                removed += 1
            for attr in node.attribute:
                for sub in (attr.g, *attr.graphs):
                    graph(sub)

    def graph(g) -> None:
        clean(g.metadata_props)
        for values in (g.input, g.output, g.value_info, g.initializer):
            for value in values:
                clean(value.metadata_props)
        nodes(g.node)

    graph(proto.graph)
    for function in proto.functions:
        clean(function.metadata_props)
        nodes(function.node)
    return removed


def _export_dynamo(model: nn.Module, example: torch.Tensor, out: Path, opset: int, dynamic_batch: bool) -> int:
    dynamic_shapes = None
    if dynamic_batch:
        dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},)
    with _quiet():
        program = torch.onnx.export(
            model, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_shapes=dynamic_shapes, verbose=False,
        )
        program.save(str(out), external_data=False)
    return opset


def _export_torchscript(model: nn.Module, example: torch.Tensor, out: Path, opset: int, dynamic_batch: bool) -> int:
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            model, (example,), str(out), dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_axes=axes, do_constant_folding=True,
        )
    return opset


@contextlib.contextmanager
def _quiet():
    """Keep the exporters' progress prints and deprecation warnings off the user's terminal."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _uses_external_data(proto) -> bool:
    from onnx.external_data_helper import uses_external_data

    return any(uses_external_data(t) for t in proto.graph.initializer)


def _check_io_names(proto) -> None:
    inputs = [i.name for i in proto.graph.input]
    outputs = [o.name for o in proto.graph.output]
    if inputs[:1] != [INPUT_NAME] or outputs[:1] != [OUTPUT_NAME]:
        raise ExportError(f"exported graph has inputs {inputs} and outputs {outputs}",
                          f"expected one input '{INPUT_NAME}' and output '{OUTPUT_NAME}' (a model with one tensor in and out)")
