"""The worked example of a detector family in one file (``compress.detection.maskrcnn``): torchvision's
Mask R-CNN, refused before it, now pruned with its mask branch, proved, reloaded and exported."""

from __future__ import annotations

import json

import pytest
import torch

from tests.cli_helpers import run_cli

SIZE = 64


def small(num_classes: int = 3):
    """A Mask R-CNN on a ResNet-18 FPN at 64 px, few proposals and detections (the test's ``--arch``)."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5,
                                   norm_layer=torch.nn.BatchNorm2d)
    return MaskRCNN(backbone, num_classes=num_classes, min_size=SIZE, max_size=SIZE, rpn_post_nms_top_n_test=50,
                    box_detections_per_img=10).eval()


def test_raw_mask_logits_are_the_mask_branch_on_the_fixed_boxes():
    from compress.detection import raw_network
    from compress.detection.family import family_of
    from compress.tasks import task_of
    from compress.tasks.detect import kinds

    torch.manual_seed(0)
    det = small()
    raw = raw_network(det)
    assert family_of(raw).name == "torchvision Mask R-CNN" and family_of(det) is family_of(raw)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        out = raw(x)
        feats = det.backbone(x)
        boxes = raw.mask_rois.boxes(SIZE, SIZE)
        heads = det.roi_heads
        logits = heads.mask_predictor(heads.mask_head(heads.mask_roi_pool(feats, [boxes] * 2, [(SIZE, SIZE)] * 2)))
    assert logits.shape == (2 * 10, 3, 28, 28)
    per_image = logits.reshape(2, 10, 3, 28, 28).permute(0, 1, 3, 4, 2).reshape(2, -1, 3)
    torch.testing.assert_close(out["mask_logits"], per_image)
    assert {"objectness", "class_logits", "box_regression"} <= set(out)
    task = task_of(raw, x)
    assert task.name == "detect" and kinds(out)["mask_logits"] == "sigmoid"
    moved = dict(out, mask_logits=out["mask_logits"] + 1.0)
    assert task.distill_loss(out, out, 2.0).item() < task.distill_loss(moved, out, 2.0).item()  # the masks are distilled


@pytest.mark.slow
def test_mask_rcnn_prunes_its_mask_head_reloads_and_exports(tmp_path, capsys):
    from benchmarks.seg_zoo import random_images

    torch.manual_seed(0)
    ckpt = tmp_path / "maskrcnn.pt"
    torch.save(small().state_dict(), ckpt)
    images = random_images(tmp_path / "imgs", 6, SIZE)
    out = tmp_path / "out"
    code, stdout, err = run_cli(["prune", ckpt, "--arch", f"{__file__}:small", "--task", "detect", "--calib", images,
                                 "--input-size", SIZE, "--ratio", 0.4, "--no-recover", "--export", "onnx",
                                 "--no-progress", "--json", "-o", out], capsys)
    assert code == 0, err
    assert "proved against the zeroed original" in err
    summary = json.loads(stdout)
    assert summary["task"] == "detect" and summary["macs_after"] < summary["macs_before"]
    assert any(k.startswith("roi_heads.mask_head.") for k in summary["widths"])  # the mask branch was cut
    assert json.loads((out / "export.json").read_text())["onnx"]["verification"]["passed"]
    import compress

    reloaded = compress.load(str(out), trust=True).model.eval()  # its --arch is this file: reloading runs it
    with torch.no_grad():
        whole = reloaded.detector.eval()([torch.rand(3, SIZE, SIZE)])  # the whole pruned detector runs, masks too
    assert {"boxes", "scores", "labels", "masks"} <= set(whole[0])
