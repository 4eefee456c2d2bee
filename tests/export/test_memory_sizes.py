from __future__ import annotations

import pytest
import torch

from compress.export.errors import ExportError
from compress.export.memory import importable_name, peak_rss_subprocess
from compress.export.sizes import artifact_size, artifact_sizes
from compress.export.widths import misaligned_widths
from compress.layers.registry import output_width
from tests.export.factories import tiny


def test_memory_probe_bigger_model_needs_more():
    small = peak_rss_subprocess("torch", loader="tests.export.factories:tiny", loader_args=[0], batch=2,
                                input_shape=(3, 16, 16), iters=2)
    big = peak_rss_subprocess("torch", loader="tests.export.factories:big", loader_args=[0], batch=2,
                              input_shape=(3, 16, 16), iters=2)
    for r in (small, big):
        assert r.backend == "torch" and r.batch == 2 and r.gpu_peak_bytes is None
        assert 50 * 2**20 < r.baseline_rss_bytes <= r.peak_rss_bytes < 8 * 2**30  # torch alone is > 50 MiB
    # `big` holds 84 MB (80 MiB) of float32 weights; `tiny` a few KiB (plus the conv kernels' lazy init)
    assert big.model_rss_bytes > 75 * 2**20
    assert big.model_rss_bytes > small.model_rss_bytes and big.peak_rss_bytes > small.peak_rss_bytes


def test_memory_probe_onnxruntime(tiny_onnx):
    r = peak_rss_subprocess("onnxruntime", onnx_path=tiny_onnx.path, batch=4, input_shape=(3, 16, 16))
    assert r.peak_rss_bytes >= r.baseline_rss_bytes > 10 * 2**20


def test_memory_probe_errors(tmp_path):
    with pytest.raises(ExportError):
        peak_rss_subprocess("torch", batch=1, input_shape=(3, 8, 8))
    with pytest.raises(ExportError):
        peak_rss_subprocess("tflite", batch=1, input_shape=(3, 8, 8))
    with pytest.raises(ExportError) as err:
        peak_rss_subprocess("onnxruntime", onnx_path=tmp_path / "missing.onnx", batch=1, input_shape=(3, 8, 8))
    assert "failed" in str(err.value)


def test_loader_functions_become_names_a_child_process_imports():
    assert importable_name(tiny) == "tests.export.factories:tiny"
    assert importable_name("pkg.mod:fn") == "pkg.mod:fn"
    def local():
        return tiny(0)

    for nested in (lambda: None, local):
        with pytest.raises(ExportError, match="not a module-level function"):
            importable_name(nested)
    with pytest.raises(ExportError, match="not a module-level function"):
        peak_rss_subprocess("torch", loader=lambda: None, batch=1, input_shape=(3, 8, 8))


def test_artifact_sizes_count_external_data(tmp_path):
    import onnx

    model = tiny(1)
    from compress.export.onnx import export_onnx

    path = export_onnx(model, torch.randn(2, 3, 16, 16), tmp_path / "m.onnx").path
    inline = artifact_size(path)
    proto = onnx.load(str(path))
    ext = tmp_path / "ext" / "m.onnx"
    ext.parent.mkdir()
    onnx.save_model(proto, str(ext), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.onnx.data", size_threshold=0)
    data = ext.parent / "m.onnx.data"
    assert data.stat().st_size > 0
    assert artifact_size(ext) == ext.stat().st_size + data.stat().st_size
    assert abs(artifact_size(ext) - inline) < inline * 0.5
    folder = tmp_path / "ext"
    sizes = artifact_sizes({"inline": path, "external": ext, "folder": folder, "missing": tmp_path / "nope"})
    assert sizes["folder"] == sizes["external"] and "missing" not in sizes


def test_misaligned_widths():
    model = tiny(0, width=6)  # convs 6 and 12 channels, classifier 5
    assert misaligned_widths(model, width_of=output_width) == [("features.0", 6), ("features.3", 12), ("head", 5)]
    assert misaligned_widths(model, multiple=2, width_of=output_width) == [("head", 5)]
    assert misaligned_widths(tiny(0, width=8), multiple=4, width_of=output_width) == [("head", 5)]
