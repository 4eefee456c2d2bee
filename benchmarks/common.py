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
    from compress.models.loading import load_model

    return load_model(MODELS[name], arch=f"cifar_{name}")


def calib_images(preprocess, paths=None):
    from compress.calibrate import ImageDataset, preload, scan_folder

    return preload(ImageDataset(paths or scan_folder(CALIB).paths, preprocess))


def eval_set(preprocess):
    from compress.calibrate import LabelledFolder, preload_labelled

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


def paired_gap(original_path: Path, arch: str, pruned_folder: Path) -> dict:
    """The original against a compress output folder on the same eval/ images, image by image.

    gap: top-1 points lost; se: its standard error from the per-image differences (paired, so the images
    both models get right or both get wrong add nothing); agreement: share of images where the two predict
    the same class. On 2,000 images two models that disagree on ~15 % of them have se ~0.8 points.
    """
    import torch

    from compress.models.loading import load_model

    original = load_model(original_path, arch=arch)
    images, labels = eval_set(original.preprocess())
    pruned = load_model(pruned_folder)

    @torch.no_grad()
    def predict(model):
        model.eval()
        return torch.cat([model(images[i : i + 500]).argmax(1) for i in range(0, images.shape[0], 500)])

    p_orig, p_pruned = predict(original.model), predict(pruned.model)
    diff = (p_orig == labels).double() - (p_pruned == labels).double()
    n = diff.numel()
    return {"gap": 100 * diff.mean().item(), "se": 100 * diff.std().item() / n**0.5,
            "agreement": (p_orig == p_pruned).double().mean().item(), "images": n,
            "top1_recovered": (p_pruned == labels).double().mean().item()}


def fit_batchnorm_to_noise(model, size: int, *, batches: int = 3, batch: int = 4):
    """Random weights whose BatchNorm statistics fit random inputs: a cumulative average over a few
    train-mode passes on noise, so activations are neither degenerate nor exploding (as a trained
    network's are not) and the proof compares real signals; channels still differ, so a wrong cut shows.
    Returns the model in eval mode. Draws from torch's global generator: seed it first."""
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(batch, 3, size, size))
    return model.eval()
