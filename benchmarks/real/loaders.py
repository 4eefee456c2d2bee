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
    preprocess: str = ""  # compress prune options when the architecture's preset is not the model's


ASSETS = {
    "yolo": Asset("yolo", "weights.pt", "compress.detection.yolo:build", "cfg=yolov8n.yaml", "detect", 80),
    "imagenet": Asset("imagenet", "model.pth", "torchvision:quantized_mobilenet_v2", "quantize=False", "classify",
                      1000),
    # ENet (CamVid): RGB in [0, 1], the 480x360 frames as they are; 12 outputs, the 12th "unlabelled" (255 in masks)
    "seg": Asset("seg", "enet_camvid.pth", "benchmarks/real/archs/enet.py:build", "num_classes=12", "segment", 12,
                 "--input-size 360x480 --mean 0,0,0 --std 1,1,1"),
}


def arch(a: Asset) -> str:
    """The --arch of ``a``, a file path made absolute (it is relative to the repository)."""
    return f"{ROOT / a.arch}" if ".py:" in a.arch else a.arch


def preprocess_options(a: Asset) -> dict[str, str]:
    """``--input-size 360x480 --mean ...`` as load_model keywords."""
    words = a.preprocess.split()
    return {k.lstrip("-").replace("-", "_"): v for k, v in zip(words[::2], words[1::2])}


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
        path = folder / file
        if path.is_dir():  # a folder: the SHA-256 of its sorted "name  sha256" lines, as assets.py pins them
            lines = "".join(f"{p.name}  {hashlib.sha256(p.read_bytes()).hexdigest()}\n" for p in sorted(path.iterdir()))
            digest = hashlib.sha256(lines.encode()).hexdigest()
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != info["sha256"]:
            raise ValueError(f"{folder / file}: SHA-256 {digest}, asset.json recorded {info['sha256']}")


def command(name: str, target: str, root: Path | None = None) -> list[str]:
    """The `compress prune` command line of the RESULTS.md tables for ``target`` (e.g. ``--ratio 0.3``)."""
    a, folder = ASSETS[name], (root or assets_root()) / name
    return ["compress", "prune", str(folder / a.weights), "--arch", arch(a), "--arch-kwargs", a.arch_kwargs,
            "--task", a.task, *a.preprocess.split(), "--calib", str(folder / "calib"), "--eval", str(folder / "eval"),
            *target.split(), "--export", "onnx,openvino", "--bench"]


def load(name: str, root: Path | None = None):
    """(model, preprocess, eval data, calib image list) of asset ``name``, read by compress's own loaders; the eval
    data of a segmenter is its (image, mask) path pairs (compress.calibrate.masks.mask_pairs)."""
    from compress.calibrate import LabelledFolder, Preprocess, scan_folder
    from compress.calibrate.boxes import read_boxes
    from compress.calibrate.masks import mask_pairs
    from compress.models.arch import parse_arch_kwargs
    from compress.models.loading import load_model

    a, folder = ASSETS[name], (root or assets_root()) / name
    loaded = load_model(folder / a.weights, arch=arch(a), arch_kwargs=parse_arch_kwargs(a.arch_kwargs),
                        **preprocess_options(a))
    preprocess = Preprocess.from_dict(loaded.spec.preprocess)
    if a.task == "detect":
        labelled = read_boxes(folder / "eval")
    elif a.task == "segment":
        labelled = mask_pairs(folder / "eval")
    else:
        labelled = LabelledFolder(folder / "eval", preprocess)
    calib = scan_folder(folder / "calib").paths
    return loaded.model, preprocess, labelled, calib
