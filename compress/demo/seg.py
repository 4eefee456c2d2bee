"""The embedded segmentation demo: synthetic scenes of rendered digits, a trained SegDigitNet, folders.

A scene is a 32x32 RGB canvas with two of scikit-learn's 8x8 handwritten digits (random size 13-19 px,
position, colours, mild noise), the second drawn over the first; its mask gives each pixel its class:
0 background, 1 + d for digit d (where the digit's ink is above half). Digits of a stratified 20 % split
only ever appear in the labelled ``eval/`` scenes (``images/`` + ``masks/``), the others in the unlabeled
``calib/`` scenes and in training, which renders fresh scenes every epoch for a fixed number of steps
(deterministic for ``(seed, train_seconds)``). ``demo.json`` is written last: its presence means complete.
Run as ``python -m compress.demo.seg OUT_DIR``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compress.util.atomic import write_text
from compress.demo.assets import build_scene_demo, cached_meta, save_png, scene_demo_main, to_tensor_batch

ARCH = "compress.archs.segdigits:segdigitnet"
FORMAT = 1
SIZE = 32
DIGITS_PER_SCENE = 2
N_CALIB = 1200
N_EVAL = 300
STEPS_PER_SECOND = 5.0  # turns train_seconds into a fixed step count (so the result does not depend on the clock):
# a nominal rate (not measured on an idle machine); the 450 default steps took 312 s on the shared development machine under
# a load average of 6-9 (benchmarks/RESULTS.md)
BATCH = 32


@dataclass(frozen=True)
class SegDemoAssets:
    checkpoint: Path
    calib_dir: Path  # unlabeled scenes, flat
    eval_dir: Path  # eval/images/<n>.png + eval/masks/<n>.png
    arch: str = ARCH
    eval_miou: float | None = None  # labelled mIoU of the trained model on eval_dir
    train_time_s: float | None = None


def render_scene(digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Digits (k, 8, 8) in [0, 1] with their classes -> (32x32x3 uint8 image, 32x32 uint8 mask)."""
    from PIL import Image

    canvas = np.zeros((SIZE, SIZE), dtype=np.float32)
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    for k, (digit, label) in enumerate(zip(digits, labels)):
        size = int(rng.integers(13, 20))
        ink = np.clip(np.asarray(Image.fromarray(digit).resize((size, size), Image.BILINEAR)), 0.0, 1.0)
        half = SIZE // len(digits)  # each digit mostly in its own strip, overlapping its neighbour a little
        left = int(np.clip(k * half + rng.integers(-3, half - size + 4), 0, SIZE - size))
        top = int(rng.integers(0, SIZE - size + 1))
        region = canvas[top:top + size, left:left + size]
        np.maximum(region, ink, out=region)
        mask[top:top + size, left:left + size][ink > 0.5] = 1 + int(label)
    fg = rng.uniform(0.55, 1.0, size=3).astype(np.float32)
    bg = rng.uniform(0.0, 0.35, size=3).astype(np.float32)
    img = bg + (fg - bg) * canvas[..., None]
    img += rng.normal(0.0, 0.03, size=img.shape).astype(np.float32)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), mask


def scenes(images: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` scenes of random digits from ``images``: (n, 32, 32, 3) uint8 and (n, 32, 32) uint8."""
    xs, ys = [], []
    for _ in range(n):
        pick = rng.integers(0, len(images), size=DIGITS_PER_SCENE)
        x, y = render_scene(images[pick], labels[pick], rng)
        xs.append(x)
        ys.append(y)
    return np.stack(xs), np.stack(ys)


def make_seg_demo_assets(out_dir: str | Path, *, seed: int = 0, train_seconds: float = 90, n_calib: int = N_CALIB,
                         n_eval: int = N_EVAL) -> SegDemoAssets:
    """Create (or reuse, when complete for the same settings) the segmentation demo under ``out_dir``."""
    out = Path(out_dir)
    existing = _complete(out, seed, train_seconds, n_calib, n_eval)
    if existing is not None:
        return existing
    steps = max(1, int(round(train_seconds * STEPS_PER_SECOND)))
    model, train_time, ex, ey = build_scene_demo(
        out, seed, n_calib, n_eval, scenes, _write_eval,
        lambda images, labels: train_segdigitnet(images, labels, steps=steps, seed=seed))
    miou = evaluate_scenes(model, ex, ey)
    meta = {"format": FORMAT, "source": "sklearn.datasets.load_digits, two digits per 32x32 scene",
            "seed": seed, "train_seconds": train_seconds, "steps": steps, "batch": BATCH,
            "train_time_s": round(train_time, 2), "arch": ARCH, "preset": "cifar", "checkpoint": "checkpoint.pt",
            "calib_dir": "calib", "eval_dir": "eval", "n_calib": n_calib, "n_eval": n_eval,
            "classes": ["background", *(str(d) for d in range(10))], "eval_miou": round(miou, 4)}
    write_text(out / "demo.json", json.dumps(meta, indent=2) + "\n")
    return _assets(out, meta)


def train_segdigitnet(images: np.ndarray, labels: np.ndarray, *, steps: int, seed: int, batch: int = BATCH):
    """Train SegDigitNet for ``steps`` minibatches of fresh scenes (per-pixel cross-entropy)."""
    import torch
    import torch.nn.functional as F

    from compress.archs.segdigits import segdigitnet

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    model = segdigitnet().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, total_steps=steps, pct_start=0.15)
    start = time.perf_counter()
    model.train()
    per_round = 50  # steps per freshly rendered set of scenes
    for step in range(steps):
        if step % per_round == 0:
            xs, ys = scenes(images, labels, per_round * batch, rng)
            x_all = to_tensor_batch(xs).contiguous(memory_format=torch.channels_last)
            y_all = torch.from_numpy(ys.astype(np.int64))
        k = step % per_round
        x, y = x_all[k * batch:(k + 1) * batch], y_all[k * batch:(k + 1) * batch]
        loss = F.cross_entropy(model(x)["out"], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model = model.to(memory_format=torch.contiguous_format).eval()
    return model, time.perf_counter() - start


def evaluate_scenes(model, images: np.ndarray, masks: np.ndarray) -> float:
    """Labelled mIoU of ``model`` on uint8 scenes and their masks."""
    import torch

    from compress.tasks.segment import confusion, miou

    with torch.no_grad():
        pred = model(to_tensor_batch(images))["out"].argmax(1)
    return miou(confusion(pred, torch.from_numpy(masks.astype(np.int64)), 11))


def _write_eval(folder: Path, images: np.ndarray, masks: np.ndarray) -> None:
    """Labelled scenes: ``images/NNNN.png`` and their masks in ``masks/NNNN.png``."""
    (folder / "images").mkdir()
    (folder / "masks").mkdir()
    for n, (x, y) in enumerate(zip(images, masks)):
        save_png(x, folder / "images" / f"{n:04d}.png")
        save_png(y, folder / "masks" / f"{n:04d}.png")


def _complete(out: Path, seed: int, train_seconds: float, n_calib: int, n_eval: int) -> SegDemoAssets | None:
    meta = cached_meta(out, {"format": FORMAT, "seed": seed, "train_seconds": train_seconds, "n_calib": n_calib,
                             "n_eval": n_eval}, {"calib/*.png": n_calib, "eval/masks/*.png": n_eval})
    return None if meta is None else _assets(out, meta)


def _assets(out: Path, meta: dict[str, Any]) -> SegDemoAssets:
    return SegDemoAssets(checkpoint=out / meta["checkpoint"], calib_dir=out / meta["calib_dir"],
                         eval_dir=out / meta["eval_dir"], arch=meta["arch"], eval_miou=meta.get("eval_miou"),
                         train_time_s=meta.get("train_time_s"))


def main(argv: list[str] | None = None) -> int:
    return scene_demo_main(argv, "compress.demo.seg", make_seg_demo_assets, _describe)


def _describe(out: str, a) -> str:
    return (f"segmentation demo in {out}: checkpoint {a.checkpoint}, arch {a.arch}, labelled mIoU {a.eval_miou:.2%}, "
            f"trained {a.train_time_s:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
