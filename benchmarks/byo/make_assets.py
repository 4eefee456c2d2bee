"""Assets for the "bring your own detector" demo (issue 49): the ShuffleNetV2-style dense detector of
tests/shuffledet.py (random weights, seed 0; its head's bias set so every image has confident boxes), a
calibration folder of real photos (the first N of /work/real-assets/yolo/calib) and an eval folder whose YOLO
txt labels are the original's own boxes (score >= 0.5) under the training pipeline (BGR, cv2 bilinear, 64x64
stretch). With random weights the labelled mAP measures how well a cut keeps the original's detections, not
object detection; a trained detector could not be trained on this shared 2-core machine in the time left.

    python benchmarks/byo/make_assets.py OUT [N_CALIB] [N_EVAL]
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from calibrate.preprocess import Preprocess  # noqa: E402
from tests.shuffledet import decode, shuffledet  # noqa: E402

PHOTOS = Path("/work/real-assets/yolo/calib")
PIPELINE = Preprocess(input_size=(64, 64), mean=(0, 0, 0), std=(1, 1, 1), channel_order="bgr", resize_kernel="bilinear")


def main(out: Path, n_calib: int = 96, n_eval: int = 32) -> None:
    torch.manual_seed(0)
    model = shuffledet(num_classes=3).eval()
    with torch.no_grad():
        model.head.bias[0] = 3.0
        model.head.bias[5:] = torch.tensor([2.0, -2.0, -2.0])
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "weights.pt")
    photos = sorted(PHOTOS.glob("*.jpg"))
    (out / "calib").mkdir(exist_ok=True)
    for p in photos[:n_calib]:
        shutil.copy(p, out / "calib" / p.name)
    (out / "eval" / "images").mkdir(parents=True, exist_ok=True)
    (out / "eval" / "labels").mkdir(exist_ok=True)
    boxes_written = 0
    for p in photos[-n_eval:]:
        shutil.copy(p, out / "eval" / "images" / p.name)
        with Image.open(p) as img:
            x = PIPELINE(img.convert("RGB")).unsqueeze(0)
        with torch.no_grad():
            boxes, scores, labels = decode(model(x), (64, 64))[0]
        keep = scores >= 0.5
        lines = [f"{int(c)} {(b[0] + b[2]) / 128:.5f} {(b[1] + b[3]) / 128:.5f} {(b[2] - b[0]) / 64:.5f} "
                 f"{(b[3] - b[1]) / 64:.5f}" for b, c in zip(boxes[keep].clamp(0, 64).tolist(), labels[keep])]
        boxes_written += len(lines)
        (out / "eval" / "labels" / f"{p.stem}.txt").write_text("".join(line + "\n" for line in lines))
    print(f"{out}: weights.pt, calib/ ({n_calib} photos), eval/ ({n_eval} photos, {boxes_written} boxes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), *(int(a) for a in sys.argv[2:4]))
