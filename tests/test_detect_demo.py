"""The embedded detector end to end (tiny training here; the quality figures are measured by
benchmarks/det_demo.py): scenes and YOLO labels, raw outputs through the detect task, labelled mAP."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.cli_helpers import run_cli

pytest.importorskip("torchmetrics", reason="labelled and label-free mAP need torchmetrics (the detect extra)")
pytest.importorskip("pycocotools", reason="torchmetrics' mAP backend is pycocotools (the detect extra)")


@pytest.fixture(scope="module")
def det_assets(tmp_path_factory):
    from compress.demo.det import make_det_demo_assets

    return make_det_demo_assets(tmp_path_factory.mktemp("det"), train_seconds=5, n_calib=96, n_eval=16)


def test_scenes_boxes_are_the_digits_ink():
    from sklearn.datasets import load_digits

    from compress.demo.det import SIZE, render_scene

    d = load_digits()
    rng = np.random.default_rng(3)
    img, boxes = render_scene((d.images[:3] / 16.0).astype(np.float32), d.target[:3], rng)
    assert img.shape == (SIZE, SIZE, 3) and 1 <= len(boxes) <= 3
    grey = img.astype(np.float32).mean(-1)
    for c, x1, y1, x2, y2 in boxes.tolist():
        assert int(c) in d.target[:3].tolist() and 0 <= x1 < x2 <= SIZE and 0 <= y1 < y2 <= SIZE
        inside = grey[int(y1):int(y2), int(x1):int(x2)]
        assert inside.max() > grey.min() + 40  # ink (brighter than the background) inside every box


def test_layout_labels_and_reuse(det_assets):
    labels = sorted((det_assets.eval_dir / "labels").glob("*.txt"))
    assert len(labels) == 16 and len(list(det_assets.calib_dir.glob("*.png"))) == 96
    first = labels[0].read_text().split()
    assert len(first) % 5 == 0 and 0 <= int(first[0]) <= 9
    meta = json.loads((det_assets.checkpoint.parent / "demo.json").read_text())
    assert meta["preset"] == "scenes48" and 0 <= meta["eval_map50"] <= 1
    from compress.demo.det import make_det_demo_assets

    again = make_det_demo_assets(det_assets.checkpoint.parent, train_seconds=5, n_calib=96, n_eval=16)
    assert again == det_assets  # complete for the same settings: reused, not retrained


def test_raw_outputs_are_a_detect_task_and_decode():
    from compress.archs.detdigits import STRIDE, decode, detdigitnet
    from compress.tasks import task_of

    net = detdigitnet().eval()
    x = torch.randn(2, 3, 48, 48)
    out = net(x)
    assert out["cls_logits"].shape == (2, (48 // STRIDE) ** 2, 10) and out["bbox_regression"].shape == (2, 144, 4)
    assert task_of(net, x).name == "detect"
    out["cls_logits"] = torch.full_like(out["cls_logits"], -10.0)
    out["cls_logits"][0, 13, 7] = 5.0  # one confident peak: row 1, column 1 -> centre (6, 6) px
    out["bbox_regression"] = torch.ones_like(out["bbox_regression"])
    dets = decode(out, (48, 48))
    assert dets[0]["labels"].tolist() == [7] and dets[1]["boxes"].shape == (0, 4)
    assert dets[0]["boxes"].tolist() == [[2.0, 2.0, 10.0, 10.0]]


def test_prune_detector_labelled_and_label_free_map_export(det_assets, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_cli(["prune", det_assets.checkpoint, "--arch", "detdigits", "--calib", det_assets.calib_dir,
                                 "--eval", det_assets.eval_dir, "--ratio", "0.5", "--recover-steps", "6",
                                 "--export", "onnx", "--no-progress", "--json", "-o", out], capsys)
    assert code == 0, err
    s = json.loads(stdout)
    assert "task: detect (auto" in err and s["task"] == "detect" and s["metric"] == "map50"
    for key in ("map50_before", "map50_pruned", "map50_recovered", "map_before", "map_after",
                "map50_vs_original", "map_vs_original"):
        assert s[key] is None or 0 <= s[key] <= 1, key
    assert s["map50_before"] == pytest.approx(det_assets.eval_map50, abs=1e-3)  # the same labels, the same figure
    assert s["macs_after"] < 0.6 * s["macs_before"]
    onnx = json.loads((out / "export.json").read_text())["onnx"]["verification"]
    assert onnx["passed"]
    assert "mAP@0.5:0.95 (eval)" not in stdout  # --json: the table is not printed
    code, stdout, err = run_cli(["bench", out, "--backend", "onnxruntime", "--batch", "1", "--iters", "3", "--warmup", "1",
                                 "--min-seconds", "0", "--no-memory", "--eval", det_assets.eval_dir], capsys)
    assert code == 0, err
    assert "mAP@0.5 on" in err
    report = json.loads((out / "report.json").read_text())
    assert report["task"]["task"] == "detect"
    assert report["models"][0]["top1"] == pytest.approx(s["map50_before"], abs=1e-4)
    post = report["postprocess"]["compressed"][0]
    assert post["what"] == "decode + NMS" and post["batch"] == 1 and post["p50_ms"] > 0
    md = (out / "report.md").read_text()
    assert "| mAP@0.5 | det. agreement |" in md
    assert "post-processing (decode + NMS) is not in the timed raw-output network" in md


def test_sweep_shows_map_against_the_original(det_assets, tmp_path, capsys):
    code, stdout, err = run_cli(["sweep", det_assets.checkpoint, "--arch", "detdigits", "--calib", det_assets.calib_dir,
                                 "--eval", det_assets.eval_dir, "--ratios", "0.3", "--no-recover", "--device", "cpu",
                                 "-o", tmp_path / "sweep"], capsys)
    assert code == 0, err
    header = next(line for line in stdout.splitlines() if "ratio" in line)
    assert "mAP@0.5" in header and "mAP@0.5 vs original" in header and "top-1" not in stdout


def test_bad_label_line_fails_before_any_work(det_assets, tmp_path, capsys):
    import shutil

    bad = tmp_path / "eval"
    shutil.copytree(det_assets.eval_dir, bad)
    (bad / "labels" / "0003.txt").write_text("1 0.5 0.5 0.2 0.2\n4 0.5 0.5 0.2\n")
    code, _, err = run_cli(["prune", det_assets.checkpoint, "--arch", "detdigits", "--calib", det_assets.calib_dir,
                            "--eval", bad, "--ratio", "0.5", "--no-progress", "-o", tmp_path / "out"], capsys)
    assert code == 4 and "0003.txt line 2: 4 fields, expected 5" in err
    lines = err.strip().splitlines()
    assert lines[-2].startswith("task: detect") and lines[-1].startswith("error:")  # right after the task: no graph,
    assert not (tmp_path / "out").exists()  # importance or cut ran


def test_eval_on_a_raw_only_detector_is_refused_by_name(tmp_path):
    from compress.errors import UsageError
    from compress.tasks import get_task

    class RawOnly(torch.nn.Module):
        def forward(self, x):
            return {"cls_logits": x.mean((2, 3))[:, None], "bbox_regression": x.mean((2, 3))[:, None, :4]}

    task = get_task("detect")
    with pytest.raises(UsageError, match="RawOnly returns only raw outputs"):
        task.labelled_output(RawOnly(), torch.zeros(1, 3, 8, 8))


def test_postprocessing_is_timed_apart_for_detectors_only():
    from compress.archs.detdigits import detdigitnet
    from compress.detection.timing import postprocess_report

    class Whole:  # a detector without a separable decoder: the whole detector is timed, and said so
        def __init__(self, net):
            self.net = net

        def eval(self):
            return self

        def __call__(self, images):
            return [{"boxes": torch.zeros(0, 4)} for _ in images]

    class Other(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return {"cls_logits": self.conv(x).flatten(2)}

        @property
        def detector(self):
            return Whole(self)

    figures, notes = postprocess_report([("plain", torch.nn.Conv2d(3, 3, 1)), ("digits", detdigitnet()),
                                         ("other", Other())], (3, 48, 48), (1, 2))
    assert set(figures) == {"digits", "other"} and [f["batch"] for f in figures["digits"]] == [1, 2]
    assert figures["digits"][0]["what"] == "decode + NMS" and figures["other"][0]["what"].startswith("whole detector")
    assert all(f["p50_ms"] > 0 and f["network_p50_ms"] > 0 for rows in figures.values() for f in rows)
    assert len(notes) == 2 and "not in the timed raw-output network" in notes[0]


def test_scenes_are_deterministic_for_a_seed_and_varied():
    from sklearn.datasets import load_digits

    from compress.demo.det import scenes, targets

    d = load_digits()
    images = (d.images[:50] / 16.0).astype(np.float32)
    a = scenes(images, d.target[:50], 6, np.random.default_rng(1))
    b = scenes(images, d.target[:50], 6, np.random.default_rng(1))
    assert np.array_equal(a[0], b[0]) and all(np.array_equal(x, y) for x, y in zip(a[1], b[1]))
    assert not np.array_equal(a[0][0], a[0][1])
    heat, dist, weight = targets(a[1])
    assert heat.shape == (6, 10, 12, 12) and int((heat == 1).sum()) == sum(len(bx) for bx in a[1])
    assert (dist >= 0).all() and (weight > 0).sum() >= (heat == 1).sum()
