"""The written ONNX files (FP32 and INT8) carry no local path: the dynamo exporter's per-node stack traces
(absolute file paths) and module class names are stripped, so the same model exports to the same bytes
wherever the code is installed, and the files stay valid and compute the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

import compress
from compress.calibrate.readers import TensorCalibrationReader
from compress.export.onnx import PROVENANCE_KEYS, export_onnx
from compress.export.quantize import quantize_int8

REPO = str(Path(compress.__file__).parents[1])

NET_SOURCE = '''
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):  # its frames and its class are what the exporter recorded
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(x.mean(dim=(2, 3)))


def make():
    torch.manual_seed(0)
    return Net().eval()
'''


def metadata(proto: onnx.ModelProto) -> list[tuple[str, str]]:
    """Every (key, value) of the model's metadata: model, graphs, nodes (subgraphs and functions), values."""
    out = [(p.key, p.value) for p in proto.metadata_props]

    def graph(g):
        out.extend((p.key, p.value) for p in g.metadata_props)
        for values in (g.input, g.output, g.value_info, g.initializer):
            for v in values:
                out.extend((p.key, p.value) for p in v.metadata_props)
        nodes(g.node)

    def nodes(node_list):
        for n in node_list:
            out.extend((p.key, p.value) for p in n.metadata_props)
            out.append(("doc_string", n.doc_string))
            for a in n.attribute:
                for sub in (a.g, *a.graphs):
                    graph(sub)

    graph(proto.graph)
    for f in proto.functions:
        out.extend((p.key, p.value) for p in f.metadata_props)
        nodes(f.node)
    return out


def assert_no_provenance(path: Path) -> None:
    proto = onnx.load(str(path))
    entries = metadata(proto)
    assert entries, "the exporter's other metadata (name scopes, graph signature) is kept"
    assert not [k for k, _ in entries if "stack_trace" in k or k in PROVENANCE_KEYS]
    assert not [(k, v) for k, v in entries if REPO in v]
    assert REPO.encode() not in path.read_bytes()
    onnx.checker.check_model(proto, full_check=True)


def test_fp32_and_int8_files_hold_no_local_path_and_compute_the_same(tiny_model, images, tmp_path):
    fp32 = tmp_path / "model.onnx"
    result = export_onnx(tiny_model, images[:2], fp32)
    assert result.exporter == "dynamo"  # the exporter that writes the stack traces
    assert_no_provenance(fp32)
    session = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = tiny_model(images[:8]).numpy()
    np.testing.assert_allclose(session.run(None, {"input": images[:8].numpy()})[0], ref, atol=1e-4, rtol=0)

    int8 = tmp_path / "model.int8.onnx"
    quantize_int8(fp32, int8, TensorCalibrationReader(images[:32], "input", batch_size=16))
    assert_no_provenance(int8)
    session8 = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    got = session8.run(None, {"input": images[:8].numpy()})[0]
    assert got.shape == ref.shape and np.isfinite(got).all()


def test_the_same_model_exports_to_the_same_bytes_wherever_its_code_lives(tmp_path):
    """One model file in two folders (two checkouts), loaded as ``--arch path.py:make`` loads it: the dynamo
    exporter is deterministic, so the files differ only where they recorded the builder's paths."""
    from compress.models.arch import resolve_arch

    written = []
    for where in ("a", "b"):
        source = tmp_path / where / "net.py"
        source.parent.mkdir()
        source.write_text(NET_SOURCE)
        model = resolve_arch(f"{source}:make")
        x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
        for copy in (1, 2):
            out = tmp_path / f"{where}{copy}.onnx"
            export_onnx(model, x, out)
            assert str(tmp_path) not in str(metadata(onnx.load(str(out))))
            written.append(out.read_bytes())
    assert all(data == written[0] for data in written)
