"""Shared helpers for the benchmark scripts: the real checkpoints and CIFAR images in ../shared."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CALIB = SHARED / "data" / "cifar10" / "calib"
EVAL = SHARED / "data" / "cifar10" / "eval"
LABELS = SHARED / "data" / "cifar10" / "calib_labels.csv"
MODELS = {"resnet20": SHARED / "models" / "resnet20-cifar10.th", "resnet32": SHARED / "models" / "resnet32-cifar10.th"}

sys.path.insert(0, str(ROOT))


def require_shared() -> None:
    if not SHARED.is_dir():
        sys.exit(f"benchmarks need {SHARED} (real checkpoints and images); not found")


def load_cifar(name: str):
    from compress.loading import load_model

    return load_model(MODELS[name], arch=f"cifar_{name}")


def calib_images(preprocess, paths=None):
    from calibrate import ImageDataset, preload, scan_folder

    return preload(ImageDataset(paths or scan_folder(CALIB).paths, preprocess))


def eval_set(preprocess):
    from calibrate import LabelledFolder, preload_labelled

    return preload_labelled(LabelledFolder(EVAL, preprocess))


def peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM); ru_maxrss can carry a forking parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
