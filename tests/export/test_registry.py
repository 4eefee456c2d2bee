"""The runtime registry is the one list: formats, files, backends, CLI choices and report labels come from the
plugins' attributes, so a plugin added to ``REGISTRY`` appears everywhere without another edit."""

from __future__ import annotations

import pytest

from compress.export import runtimes
from compress.export.runtimes import NAMES, REGISTRY, get
from compress.export.runtimes.base import Runtime


class _Fake(Runtime):
    name = "fake"
    title = "Fake"
    latency = True
    optional = True
    files = {"fake": "model.fake", "fake.int8": "model.int8.fake"}
    formats = ("fake", "fake-int8")
    calibrated = ("fake-int8",)
    implies = {"fake-int8": ("int8",)}
    env_labels = (("fake", "FakeRT"),)

    def environment(self, backends):
        return {"fake": "1.0"} if self.name in backends else {}


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setitem(REGISTRY, "fake", "tests.export.test_registry:_Fake")
    monkeypatch.setattr(runtimes, "NAMES", (*NAMES, "fake"))
    yield get("fake")
    runtimes.forget("fake")


def test_every_list_comes_from_the_plugins(fake):
    assert runtimes.formats()[-2:] == ("fake", "fake-int8") and runtimes.formats()[:2] == ("onnx", "int8")
    assert runtimes.files()["fake.int8"] == "model.int8.fake" and runtimes.files()["onnx"] == "model.onnx"
    assert "fake" in runtimes.latency_backends() and "fake" in runtimes.memory_backends()
    assert "fake" in runtimes.optional() and "fake-int8" in runtimes.calibrated_formats()
    assert runtimes.format_owner("fake-int8") is fake and runtimes.format_owner("trt") is get("tensorrt")


def test_the_export_order_and_implied_formats_come_from_the_registry(fake):
    from compress.run.deploy import require_runtimes, with_implied

    assert with_implied(("fake-int8",)) == ("fake-int8", "int8")
    assert with_implied(("openvino-int8", "onnx")) == ("openvino-int8", "onnx", "int8")
    assert require_runtimes(("fake",)) == ["fake"]  # optional: required before anything is written
    assert require_runtimes(("onnx", "trt")) == []  # a missing engine builder is skipped, not refused


def test_report_labels_and_environment_come_from_the_plugins(fake):
    from compress.export.bench import environment
    from compress.export.report import backend_label, environment_line

    env = environment(1, ("torch", "fake"))
    assert list(env)[-1] == "fake" and "openvino" not in env  # optional runtimes only when they ran, last
    assert list(env)[5:9] == ["torch", "onnxruntime", "onnx", "numpy"]
    assert "FakeRT 1.0" in environment_line({"environment": env})
    assert backend_label({"backend": "torch", "device": "cuda:0"}) == "torch cuda:0"
    assert backend_label({"backend": "aoti", "device": "cuda"}) == "aoti"
    assert backend_label({"backend": "gone", "device": "cuda"}) == "gone"  # a report of an unknown runtime


def test_cli_choices_are_the_registry_lists():
    from compress.cli.bench_cmd import bench
    from compress.cli.export_cmd import export
    from compress.cli.prune_cmd import prune

    options = {p.name: p for p in prune.params}
    assert tuple(options["backend"].type.choices) == runtimes.latency_backends()
    assert all(f in options["formats"].help for f in runtimes.formats())
    assert all(f in {p.name: p for p in export.params}["formats"].help for f in runtimes.formats())
    assert all(name in {p.name: p for p in bench.params}["backends"].help for name in NAMES)
