"""Load each real asset the way `compress prune` reads it: the model (with its --arch), the labelled eval
folder and the unlabeled calib folder. Used by tests/test_real_assets.py and to print the commands."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Asset:
    name: str
    weights: str  # inside the asset folder
    arch: str
    arch_kwargs: str
    task: str
    classes: int


ASSETS = {
    "yolo": Asset("yolo", "weights.pt", "compress.detection.yolo:build", "cfg=yolov8n.yaml", "detect", 80),
    "imagenet": Asset("imagenet", "model.pth", "torchvision:quantized_mobilenet_v2", "quantize=False", "classify",
                      1000),
}


def assets_root() -> Path:
    return Path(os.environ.get("COMPRESS_REAL_ASSETS") or ROOT.parent / "real-assets").resolve()


def missing(name: str, root: Path | None = None) -> str | None:
    """Why asset ``name`` cannot be loaded from ``root``, or None when it is complete."""
    folder = (root or assets_root()) / name
    if not (folder / "asset.json").is_file():
        return f"{folder} not built (python benchmarks/real/assets.py --only {name})"
    for part in (ASSETS[name].weights, "eval", "calib"):
        if not (folder / part).exists():
            return f"{folder / part} is missing"
    return None


def check_recorded(name: str, root: Path | None = None) -> None:
    """The derived weights still have the SHA-256 that asset.json recorded when they were made."""
    folder = (root or assets_root()) / name
    record = json.loads((folder / "asset.json").read_text())
    for file, info in record["derived"].items():
        digest = hashlib.sha256((folder / file).read_bytes()).hexdigest()
        if digest != info["sha256"]:
            raise ValueError(f"{folder / file}: SHA-256 {digest}, asset.json recorded {info['sha256']}")


def command(name: str, target: str, root: Path | None = None) -> list[str]:
    """The `compress prune` command line of the RESULTS.md tables for ``target`` (e.g. ``--ratio 0.3``)."""
    a, folder = ASSETS[name], (root or assets_root()) / name
    return ["compress", "prune", str(folder / a.weights), "--arch", a.arch, "--arch-kwargs", a.arch_kwargs,
            "--task", a.task, "--calib", str(folder / "calib"), "--eval", str(folder / "eval"), *target.split(),
            "--export", "onnx,openvino", "--bench"]


def load(name: str, root: Path | None = None):
    """(model, preprocess, eval data, calib image list) of asset ``name``, read by compress's own loaders."""
    from compress.calibrate import LabelledFolder, Preprocess, scan_folder
    from compress.calibrate.boxes import read_boxes
    from compress.models.loading import load_model

    a, folder = ASSETS[name], (root or assets_root()) / name
    kwargs = dict(kv.split("=", 1) for kv in a.arch_kwargs.split(","))
    kwargs = {k: (False if v == "False" else v) for k, v in kwargs.items()}
    loaded = load_model(folder / a.weights, arch=a.arch, arch_kwargs=kwargs)
    preprocess = Preprocess.from_dict(loaded.spec.preprocess)
    if a.task == "detect":
        labelled = read_boxes(folder / "eval")
    else:
        labelled = LabelledFolder(folder / "eval", preprocess)
    calib = scan_folder(folder / "calib").paths
    return loaded.model, preprocess, labelled, calib
