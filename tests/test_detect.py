"""Detection: raw-output networks of torchvision/YOLO detectors, the detect task, chunk proxies."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch
import torch.nn as nn

from compress.tasks import get_task, resolve_task
from tests.cli_helpers import run_cli


def _raw(n=2, locs=50, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"cls_logits": torch.randn(n, locs, classes, generator=g),
            "bbox_regression": torch.randn(n, locs, 4, generator=g)}


def test_detect_task_claims_raw_outputs_and_is_picked_by_auto():
    out, x = _raw(), torch.zeros(2, 3, 8, 8)
    task, how = resolve_task("auto", out, x)
    assert task.name == "detect" and "cls_logits" in how
    assert not get_task("detect").claims(torch.zeros(2, 10), x)  # logits alone are a classifier's
    assert not get_task("detect").claims({"cls_logits": out["cls_logits"]}, x)  # no boxes: not a detector


def test_distill_loss_per_kind_is_zero_at_the_teacher_and_weights_boxes_by_confidence():
    task = get_task("detect")
    t = _raw()
    assert task.distill_loss(t, t, 2.0).item() == pytest.approx(
        task.distill_loss({k: v.clone() for k, v in t.items()}, t, 2.0).item())
    # BCE against the teacher's own probabilities is minimal at the teacher
    s = {k: v + 0.5 for k, v in t.items()}
    assert task.distill_loss(s, t, 1.0) > task.distill_loss(t, t, 1.0)
    # a box error where the teacher is confident costs more than the same error where it is not
    t["cls_logits"][:, 0] = 8.0
    t["cls_logits"][:, 1] = -8.0
    near, far = ({k: v.clone() for k, v in t.items()} for _ in range(2))
    near["bbox_regression"][:, 0] += 3.0
    far["bbox_regression"][:, 1] += 3.0
    base = task.distill_loss(t, t, 1.0)
    assert task.distill_loss(near, t, 1.0) - base > 10 * (task.distill_loss(far, t, 1.0) - base)


def test_softmax_scores_use_kl_and_agreement_reads_confident_locations():
    task = get_task("detect")
    t = {"class_logits": torch.randn(3, 200, 4), "bbox_regression": torch.randn(3, 200, 4)}
    assert task.distill_loss(t, t, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    meter = task.agreement_meter()
    meter.update(t, t)
    assert meter.value() == 1.0 and meter.per_image().shape == (3,)
    flipped = {"class_logits": -t["class_logits"], "bbox_regression": t["bbox_regression"]}
    meter = task.agreement_meter()
    meter.update(flipped, t)
    assert meter.value() < 0.5


def test_list_of_chunk_traces_and_chunks_stay_paired():
    from compress.graph.trace import trace

    class C2fLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.cv1, self.m, self.cv2 = nn.Conv2d(3, 16, 1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(24, 8, 1)

        def forward(self, x):
            y = list(self.cv1(x).chunk(2, 1))
            y.extend(m(y[-1]) for m in [self.m])
            return self.cv2(torch.cat(y, 1))

    model = C2fLike().eval()
    traced = trace(model, torch.randn(1, 3, 8, 8))
    assert traced.opaque == {}
    assert torch.allclose(traced.gm(torch.ones(1, 3, 8, 8)), model(torch.ones(1, 3, 8, 8)))


def test_raw_network_keeps_the_detectors_state_dict_and_deepcopies_as_one():
    from compress.detection.base import RawDetector

    class Det(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone, self.head = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 2, 1)

    class Raw(RawDetector):
        def forward(self, x):
            return self.head(self.backbone(x))

    det = Det()
    raw = Raw(det)
    assert list(raw.state_dict()) == list(det.state_dict())
    copied = copy.deepcopy(raw)
    assert copied.detector.backbone is copied.backbone and copied.backbone is not raw.backbone
    raw.head = nn.Conv2d(4, 3, 1)  # a replaced layer reaches the whole detector
    assert raw.detector.head is raw.head


def _torchvision(name):
    import torchvision

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torchvision.models.get_model(name, weights=None, weights_backbone=None).eval()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ssdlite320_mobilenet_v3_large", "fcos_resnet50_fpn"])
def test_raw_outputs_equal_the_detectors_own_head(name):
    from compress.detection import raw_network

    torch.manual_seed(0)
    det = _torchvision(name)
    raw = raw_network(det)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        out, ref = raw(x), det.head(list(det.backbone(x).values()))
    names = {"cls_logits": "class_logits"} if "ssd" in name else {}
    for key, value in ref.items():
        torch.testing.assert_close(out[names.get(key, key)], value)


@pytest.mark.slow
def test_faster_rcnn_raw_network_runs_rpn_and_box_head_on_fixed_rois():
    from compress.detection import raw_network

    det = _torchvision("fasterrcnn_mobilenet_v3_large_320_fpn")
    raw = raw_network(det)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        out = raw(x)
        feats = det.backbone(x)
        obj, _ = det.rpn.head(list(feats.values()))
        boxes = raw.fixed_rois.boxes(96, 96)
        pooled = det.roi_heads.box_roi_pool(feats, [boxes], [(96, 96)])
        logits, _ = det.roi_heads.box_predictor(det.roi_heads.box_head(pooled))
    assert out["objectness"].shape == (1, sum(o[0].numel() for o in obj), 1)
    torch.testing.assert_close(out["class_logits"][0], logits)


def _prune_detector(tmp_path, capsys, ckpt, arch, kwargs, size=96):
    from benchmarks.seg_zoo import random_images

    images = random_images(tmp_path / "imgs", 6, size)
    out = tmp_path / "out"
    code, stdout, err = run_cli(["prune", ckpt, "--arch", arch, "--arch-kwargs", kwargs, "--task", "detect",
                                 "--calib", images, "--input-size", size, "--ratio", 0.4, "--no-recover",
                                 "--export", "onnx", "--no-progress", "--json", "-o", out], capsys)
    assert code == 0, err
    assert "proved against the zeroed original" in err
    summary = json.loads(stdout)
    assert summary["task"] == "detect"
    assert json.loads((out / "export.json").read_text())["onnx"]["verification"]["passed"]
    import compress
    from compress.export.verify import verify_onnx

    reloaded = compress.load(str(out)).model.eval()
    assert verify_onnx(out / "model.onnx", reloaded, torch.randn(2, 3, size, size), raise_on_fail=False).passed
    return summary, reloaded


@pytest.mark.slow
def test_ssdlite_prunes_reloads_and_exports(tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = tmp_path / "ssd.pt"
    torch.save(_torchvision("ssdlite320_mobilenet_v3_large").state_dict(), ckpt)
    summary, reloaded = _prune_detector(tmp_path, capsys, ckpt, "torchvision:ssdlite320_mobilenet_v3_large",
                                        "weights_backbone=none")
    assert summary["macs_after"] <= 0.8 * summary["macs_before"]
    with torch.no_grad():
        detections = reloaded.detector.eval()([torch.rand(3, 96, 96)])  # the whole pruned detector runs
    assert set(detections[0]) == {"boxes", "scores", "labels"}


@pytest.mark.slow
@pytest.mark.parametrize("cfg", ["yolov8n", "yolo11n"])
def test_yolo_from_yaml_prunes_reloads_and_exports(cfg, tmp_path, capsys):
    pytest.importorskip("ultralytics", reason="YOLO needs the compress[yolo] extra (pip install ultralytics)")
    from compress.detection.yolo import build

    torch.manual_seed(0)
    ckpt = tmp_path / f"{cfg}.pt"
    torch.save(build(f"{cfg}.yaml").state_dict(), ckpt)
    summary, reloaded = _prune_detector(tmp_path, capsys, ckpt, "compress.detection.yolo:build",
                                        f"cfg={cfg}.yaml", size=64)
    assert summary["macs_after"] <= 0.75 * summary["macs_before"]
    with torch.no_grad():
        decoded, _raw_preds = reloaded.detector.eval()(torch.rand(1, 3, 64, 64))
    assert decoded.shape[1] == 4 + 80  # the Detect head keeps its output shape


@pytest.mark.slow
def test_map_against_the_original_is_one_for_itself_and_drops_when_boxes_move():
    pytest.importorskip("ultralytics", reason="YOLO needs the compress[yolo] extra (pip install ultralytics)")
    pytest.importorskip("torchmetrics", reason="mAP needs the compress[detect] extra (pip install torchmetrics)")
    pytest.importorskip("pycocotools", reason="mAP needs the compress[detect] extra (pip install pycocotools)")
    from compress.detection import raw_network
    from compress.detection.agreement import map_vs_original
    from compress.detection.yolo import build

    torch.manual_seed(0)
    teacher = raw_network(build("yolov8n.yaml"))
    with torch.no_grad():  # a confident teacher, so that it keeps boxes above the score threshold
        for seq in teacher.model[-1].cv3:
            seq[-1].bias.fill_(2.0)
    student = copy.deepcopy(teacher)
    x = torch.rand(2, 3, 64, 64)
    same = map_vs_original(student, teacher, x, (0, 0, 0), (1, 1, 1))
    assert same["map50_vs_original"] == 1.0 and same["original_boxes"] > 0
    with torch.no_grad():
        for p in student.model[-1].cv2.parameters():
            p.add_(0.3 * torch.randn_like(p))
    moved = map_vs_original(student, teacher, x, (0, 0, 0), (1, 1, 1))
    assert moved["map_vs_original"] < moved["map50_vs_original"] < 1.0


@pytest.mark.slow
def test_pickled_ultralytics_checkpoint_loads_as_a_float_raw_network_with_trust(tmp_path):
    pytest.importorskip("ultralytics", reason="YOLO needs the compress[yolo] extra (pip install ultralytics)")
    from compress.detection.yolo import build
    from compress.errors import CompressError
    from compress.models.loading import load_model

    path = tmp_path / "best.pt"
    torch.save({"model": build("yolov8n.yaml").half(), "ema": None, "epoch": -1}, path)  # as Ultralytics saves
    with pytest.raises(CompressError):
        load_model(path)  # a pickle runs code: refused without --trust
    loaded = load_model(path, trust=True)
    assert type(loaded.model).__name__ == "YOLORaw" and next(loaded.model.parameters()).dtype == torch.float32
    assert loaded.spec.preprocess["std"] == [1.0, 1.0, 1.0]  # Ultralytics reads [0, 1] RGB
    out = loaded.model(torch.rand(1, 3, 64, 64))
    assert set(out) == {"box_distribution", "cls_logits"}


def test_labelled_meter_is_created_without_labels_and_a_folder_without_boxes_is_refused(tmp_path):
    from compress.calibrate import CalibrationError, Preprocess

    task = get_task("detect")
    meter = task.metric_meter()  # compress bench creates it with the others, labels or not
    with pytest.raises(ValueError, match="no images"):
        meter.value()
    (tmp_path / "images").mkdir()
    with pytest.raises(CalibrationError, match="not a labelled detection folder"):
        task.labelled(str(tmp_path), Preprocess(input_size=(32, 32)))
