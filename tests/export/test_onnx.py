from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from compress.export.errors import ExportError, VerificationError
from compress.export.onnx import export_onnx
from compress.export.verify import compare_sessions, verify_onnx
from tests.export.factories import tiny


def test_export_is_dynamic_batch_and_matches_torch(tiny_onnx, tiny_model, images):
    assert tiny_onnx.exporter == "dynamo" and tiny_onnx.warnings == []
    proto = onnx.load(str(tiny_onnx.path))
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 16, 16]
    session = ort.InferenceSession(str(tiny_onnx.path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        x = images[:batch]
        got = session.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            ref = tiny_model(x).numpy()
        assert got.shape == (batch, 5)
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_weights_embedded_no_external_data(tiny_onnx):
    folder = tiny_onnx.path.parent
    assert sorted(p.name for p in folder.iterdir()) == ["tiny.onnx"]
    proto = onnx.load(str(tiny_onnx.path), load_external_data=False)
    assert proto.graph.initializer, "weights must be initializers"
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)


def test_original_model_left_unchanged(tmp_path, images):
    model = tiny(3)
    model.train()
    model.features[1].eval()  # a mixed-mode model: each flag must come back as it was
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    export_onnx(model, images[:1], tmp_path / "m.onnx")  # batch-1 example still gives a dynamic batch
    assert model.training and not model.features[1].training and model.features[4].training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == hooks
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": images[:3].numpy()})[0].shape == (3, 5)


def test_fallback_to_torchscript_records_warning(tmp_path, monkeypatch, caplog, tiny_model, images):
    import compress.export.onnx as onnx_mod

    real = torch.onnx.export

    def dynamo_broken(*args, **kwargs):  # torch.export's exporter fails, the TorchScript one works
        if kwargs.get("dynamo"):
            raise RuntimeError("simulated torch.export failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", dynamo_broken)
    with caplog.at_level("WARNING", logger="compress.export.onnx"):
        result = export_onnx(tiny_model, images[:2], tmp_path / "ts.onnx")
    assert result.exporter == "torchscript" and result.opset == onnx_mod.TORCHSCRIPT_OPSET
    assert len(result.warnings) == 1 and "simulated torch.export failure" in result.warnings[0]
    assert "TorchScript" in caplog.text
    verify_onnx(result.path, tiny_model, images[:16])  # the fallback model is correct too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ts.onnx"]


def test_both_exporters_failing_raises_export_error(tmp_path, monkeypatch, tiny_model, images):
    def broken(*args, **kwargs):  # both of torch's exporters fail
        raise RuntimeError("nope")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(ExportError) as err:
        export_onnx(tiny_model, images[:2], tmp_path / "x.onnx")
    assert err.value.exit_code == 5 and "\n" not in str(err.value)
    assert not (tmp_path / "x.onnx").exists()


def test_verify_passes_then_fails_on_tampered_weights(tmp_path, tiny_onnx, tiny_model, images):
    ok = verify_onnx(tiny_onnx.path, tiny_model, images[:32])
    assert ok.passed and ok.n == 32 and ok.top1_agreement == 1.0 and ok.max_abs_diff <= 1e-4

    proto = onnx.load(str(tiny_onnx.path))
    weights = next(t for t in proto.graph.initializer if sorted(t.dims) == [5, 12])  # the classifier
    arr = -numpy_helper.to_array(weights)  # negated: the arg-max class changes
    weights.CopyFrom(numpy_helper.from_array(arr, weights.name))
    bad = tmp_path / "tampered.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(VerificationError) as err:
        verify_onnx(bad, tiny_model, images[:32])
    assert err.value.exit_code == 5 and "tampered.onnx" in str(err.value)
    result = verify_onnx(bad, tiny_model, images[:32], raise_on_fail=False)
    assert not result.passed and result.max_abs_diff > result.threshold

    agreement = compare_sessions(tiny_onnx.path, bad, images[:32])
    assert agreement.n == 32 and agreement.max_abs_diff > 1e-3 and 0.0 <= agreement.top1_agreement < 1.0
    same = compare_sessions(tiny_onnx.path, tiny_onnx.path, images[:8])
    assert same.top1_agreement == 1.0 and same.max_abs_diff == 0.0


def test_static_batch_export(tmp_path, tiny_model, images):
    result = export_onnx(tiny_model, images[:4], tmp_path / "static.onnx", dynamic_batch=False)
    dims = onnx.load(str(result.path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 4
    check = verify_onnx(result.path, tiny_model, images[:10])  # 10 = 4 + 4 + 2 padded
    assert check.passed and check.n == 10


def _identity_onnx(path, widths):
    """An ONNX model with input (N, 4) and one output per entry of ``widths``: its first w columns."""
    from onnx import TensorProto, helper

    nodes, outputs = [], []
    for i, w in enumerate(widths):
        starts = helper.make_tensor(f"s{i}", TensorProto.INT64, [1], [0])
        ends = helper.make_tensor(f"e{i}", TensorProto.INT64, [1], [w])
        axes = helper.make_tensor(f"a{i}", TensorProto.INT64, [1], [1])
        nodes += [helper.make_node("Constant", [], [f"s{i}"], value=starts),
                  helper.make_node("Constant", [], [f"e{i}"], value=ends),
                  helper.make_node("Constant", [], [f"a{i}"], value=axes),
                  helper.make_node("Slice", ["input", f"s{i}", f"e{i}", f"a{i}"], [f"out{i}"])]
        outputs.append(helper.make_tensor_value_info(f"out{i}", TensorProto.FLOAT, ["N", w]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])], outputs)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def test_verification_fails_closed_on_outputs_it_cannot_compare(tmp_path):
    x = torch.randn(3, 4)
    two = _identity_onnx(tmp_path / "two.onnx", [4, 2])
    assert compare_sessions(two, two, x).max_abs_diff == 0.0  # every output compared (a detector's raw network)
    with pytest.raises(VerificationError, match="output shapes"):  # an output missing on one side is not dropped
        compare_sessions(two, _identity_onnx(tmp_path / "first.onnx", [4]), x)

    class Pair(torch.nn.Module):
        def forward(self, x):
            return x, x

    with pytest.raises(VerificationError, match="output shapes"):  # two PyTorch outputs, one ONNX output
        verify_onnx(_identity_onnx(tmp_path / "one.onnx", [4]), Pair(), x)
    with pytest.raises(VerificationError, match="output shape"):
        compare_sessions(_identity_onnx(tmp_path / "w4.onnx", [4]), _identity_onnx(tmp_path / "w2.onnx", [2]), x)
