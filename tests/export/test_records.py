"""The typed deployment records (compress.export.records) read the files today's main wrote (commit 633d35a, the
shared ResNet-20 at --ratio 0.5 --export onnx,int8 --bench, an OpenVINO export of it, and a latency target on the
tiny digits model) and write them back byte for byte; readers get attributes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from compress.artifacts.summary import RunSummary
from compress.export.records import BenchRecord, ExportRecord, LatencyRecord

DATA = Path(__file__).parent / "data" / "main-633d35a"


def _text(name: str) -> str:
    return (DATA / name).read_text()


@pytest.mark.parametrize("name", ["r20.export.json", "openvino.export.json"])
def test_export_json_round_trips_byte_for_byte(name):
    record = ExportRecord.from_json(json.loads(_text(name)))
    assert json.dumps(record.to_json(), indent=1, default=str) == _text(name)
    assert record.images.verify == 64 and record.entry("onnx")["verification"]["passed"]
    assert record.entry("trt") is None


@pytest.mark.parametrize("name", ["r20.summary.json", "latency.summary.json"])
def test_summary_json_with_its_records_round_trips_byte_for_byte(name):
    summary = RunSummary.from_json(json.loads(_text(name)))
    assert json.dumps(summary.to_json(), indent=1, default=str) == _text(name)
    assert isinstance(summary.bench, BenchRecord) and summary.bench.report == "report.json"
    assert all(c["baseline"] == "original" for c in summary.bench.comparisons)


def test_the_records_are_typed_and_frozen():
    r20 = RunSummary.from_json(json.loads(_text("r20.summary.json")))
    assert isinstance(r20.export, ExportRecord) and r20.latency is None
    assert r20.export.misaligned_widths == (("linear", 10),) and r20.export.entry("int8")["activation_type"] == "uint8"
    lat = RunSummary.from_json(json.loads(_text("latency.summary.json"))).latency
    assert isinstance(lat, LatencyRecord) and lat.backend == "onnxruntime" and lat.batch == 4
    assert lat.prediction_error.configs == 3 and lat.attempts and lat.attempts[0].measured_ms > 0
    assert lat.table.entries > 0 and lat.fit.a > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        lat.target_ms = 1.0


def test_the_reports_latency_target_is_the_same_record():
    report = json.loads(_text("latency.report.json"))
    summary = json.loads(_text("latency.summary.json"))
    assert LatencyRecord.from_json(report["latency_target"]).to_json() == report["latency_target"] == summary["latency"]
