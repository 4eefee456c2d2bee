"""The embedded detection demo: synthetic scenes of rendered digits with their boxes, a trained DetDigitNet.

A scene is a 48x48 RGB canvas with one to three of scikit-learn's 8x8 handwritten digits (random size
12-18 px, positions that do not overlap, colours, mild noise); each digit's box is the tight box of its
ink (above half), its class the digit. Digits of a stratified 20 % split only ever appear in the labelled
``eval/`` scenes (``images/`` + ``labels/`` in YOLO txt: ``class cx cy w h``, normalised), the others in
the unlabeled ``calib/`` scenes and in training, which renders fresh scenes for a fixed number of steps
(deterministic for ``(seed, train_seconds)``). ``demo.json`` is written last: its presence means complete.
Run as ``python -m compress.demo.det OUT_DIR [TRAIN_SECONDS]``.

Training (CenterNet-style): a Gaussian heatmap per class with the penalty-reduced focal loss, and the
box distances (L1, in strides) at the locations near each centre.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compress.demo.assets import build_scene_demo, cached_meta, save_png, scene_demo_main, to_tensor_batch
from compress.util.atomic import write_text

ARCH = "compress.archs.detdigits:detdigitnet"
FORMAT = 1
SIZE = 48
N_CALIB = 1200
N_EVAL = 300
STEPS_PER_SECOND = 4.0  # turns train_seconds into a fixed step count (a nominal rate, not measured on an idle machine)
BATCH = 32


@dataclass(frozen=True)
class DetDemoAssets:
    checkpoint: Path
    calib_dir: Path  # unlabeled scenes, flat
    eval_dir: Path  # eval/images/<n>.png + eval/labels/<n>.txt (YOLO)
    arch: str = ARCH
    eval_map50: float | None = None  # labelled mAP@0.5 of the trained model on eval_dir
    eval_map: float | None = None  # labelled mAP@0.5:0.95
    train_time_s: float | None = None


def render_scene(digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Digits (k, 8, 8) in [0, 1] -> (48x48x3 uint8 image, (m, 5) float boxes ``class x1 y1 x2 y2`` in pixels)."""
    from PIL import Image

    canvas = np.zeros((SIZE, SIZE), dtype=np.float32)
    taken: list[tuple[int, int, int, int]] = []
    boxes = []
    for digit, label in zip(digits, labels):
        size = int(rng.integers(12, 19))
        for _ in range(20):  # a free spot (boxes may touch, never overlap)
            left, top = (int(v) for v in rng.integers(0, SIZE - size + 1, size=2))
            if all(left >= r or left + size <= l or top >= b or top + size <= t for l, t, r, b in taken):
                break
        else:
            continue
        taken.append((left, top, left + size, top + size))
        ink = np.clip(np.asarray(Image.fromarray(digit).resize((size, size), Image.BILINEAR)), 0.0, 1.0)
        canvas[top:top + size, left:left + size] = np.maximum(canvas[top:top + size, left:left + size], ink)
        ys, xs = np.nonzero(ink > 0.5)
        if len(xs):
            boxes.append([label, left + xs.min(), top + ys.min(), left + xs.max() + 1, top + ys.max() + 1])
    fg = rng.uniform(0.55, 1.0, size=3).astype(np.float32)
    bg = rng.uniform(0.0, 0.35, size=3).astype(np.float32)
    img = bg + (fg - bg) * canvas[..., None]
    img += rng.normal(0.0, 0.03, size=img.shape).astype(np.float32)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), np.asarray(boxes, dtype=np.float32).reshape(-1, 5)


def scenes(images: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator):
    """``n`` scenes of one to three random digits: (n, 48, 48, 3) uint8 and a list of (m, 5) box arrays."""
    xs, bs = [], []
    for _ in range(n):
        pick = rng.integers(0, len(images), size=int(rng.integers(1, 4)))
        x, b = render_scene(images[pick], labels[pick], rng)
        xs.append(x)
        bs.append(b)
    return np.stack(xs), bs


def yolo_lines(boxes: np.ndarray, size: int = SIZE) -> str:
    """(m, 5) ``class x1 y1 x2 y2`` pixel boxes -> YOLO txt (``class cx cy w h``, normalised)."""
    lines = []
    for c, x1, y1, x2, y2 in boxes.tolist():
        lines.append(f"{int(c)} {(x1 + x2) / 2 / size:.6f} {(y1 + y2) / 2 / size:.6f} "
                     f"{(x2 - x1) / size:.6f} {(y2 - y1) / size:.6f}")
    return "".join(line + "\n" for line in lines)


def targets(boxes: list[np.ndarray], classes: int = 10, stride: int = 4):
    """Training targets per scene: Gaussian heatmaps (n, C, h, w) with 1 at each centre's cell, and box
    distances (n, 4, h, w) in strides with their weight (n, h, w): the heat of the location's own box."""
    g = SIZE // stride
    heat = np.zeros((len(boxes), classes, g, g), dtype=np.float32)
    dist = np.zeros((len(boxes), 4, g, g), dtype=np.float32)
    weight = np.zeros((len(boxes), g, g), dtype=np.float32)
    centres = (np.arange(g, dtype=np.float32) + 0.5) * stride
    gy_px, gx_px = np.meshgrid(centres, centres, indexing="ij")  # each location's centre, (g, g)
    for i, scene in enumerate(boxes):
        for c, x1, y1, x2, y2 in scene.tolist():
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            sigma = max(0.5, max(x2 - x1, y2 - y1) / stride / 6)
            gx, gy = (centres - cx) / stride, (centres - cy) / stride
            blob = np.exp(-(gy[:, None] ** 2 + gx[None, :] ** 2) / (2 * sigma * sigma))
            blob[min(int(cy // stride), g - 1), min(int(cx // stride), g - 1)] = 1.0
            heat[i, int(c)] = np.maximum(heat[i, int(c)], blob)
            near = blob > np.maximum(weight[i], 0.3)
            ltrb = np.stack([gx_px - x1, gy_px - y1, x2 - gx_px, y2 - gy_px])
            dist[i][:, near] = np.clip(ltrb[:, near] / stride, 0, None)
            weight[i][near] = blob[near]
    return heat, dist, weight


def detection_loss(out, heat, dist, weight):
    """CenterNet's penalty-reduced focal loss on the heatmap plus heat-weighted L1 on the box distances."""
    import torch
    import torch.nn.functional as F

    n, c, g, _ = heat.shape
    logits = out["cls_logits"].reshape(n, g, g, c).permute(0, 3, 1, 2)
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    num = pos.sum().clamp_min(1.0)
    focal = -(pos * (1 - p) ** 2 * torch.log(p) + (1 - pos) * (1 - heat) ** 4 * p ** 2 * torch.log(1 - p)).sum() / num
    d = out["bbox_regression"].reshape(n, g, g, 4).permute(0, 3, 1, 2)
    l1 = (F.l1_loss(d, dist, reduction="none").sum(1) * weight).sum() / weight.sum().clamp_min(1.0)
    return focal + l1


def train_detdigitnet(images: np.ndarray, labels: np.ndarray, *, steps: int, seed: int, batch: int = BATCH):
    """Train DetDigitNet for ``steps`` minibatches of fresh scenes (on one CPU thread)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread is as fast on an idle machine, far faster on a busy one
    try:
        return _train(images, labels, steps=steps, seed=seed, batch=batch)
    finally:
        torch.set_num_threads(threads)


def _train(images: np.ndarray, labels: np.ndarray, *, steps: int, seed: int, batch: int):
    import torch

    from compress.archs.detdigits import detdigitnet

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    model = detdigitnet()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, total_steps=steps, pct_start=0.15)
    start = time.perf_counter()
    model.train()
    per_round = 25  # steps per freshly rendered set of scenes
    for step in range(steps):
        if step % per_round == 0:
            xs, bs = scenes(images, labels, per_round * batch, rng)
            x_all = to_tensor_batch(xs)
            t_all = [torch.from_numpy(t) for t in targets(bs)]
        k = slice((step % per_round) * batch, (step % per_round + 1) * batch)
        loss = detection_loss(model(x_all[k]), *(t[k] for t in t_all))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model = model.eval()
    return model, time.perf_counter() - start


def evaluate_scenes(model, images: np.ndarray, boxes: list[np.ndarray]) -> dict[str, float]:
    """Labelled mAP@0.5 and mAP@0.5:0.95 (torchmetrics) of ``model`` on uint8 scenes and their boxes."""
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    from compress.archs.detdigits import decode

    metric = MeanAveragePrecision(iou_type="bbox", backend="pycocotools")
    with torch.no_grad():
        preds = decode(model.eval()(to_tensor_batch(images)), (SIZE, SIZE))
    metric.update(preds, [{"boxes": torch.from_numpy(b[:, 1:]), "labels": torch.from_numpy(b[:, 0]).long()}
                          for b in boxes])
    result = metric.compute()
    return {"map50": float(result["map_50"]), "map": float(result["map"])}


def make_det_demo_assets(out_dir: str | Path, *, seed: int = 0, train_seconds: float = 90, n_calib: int = N_CALIB,
                         n_eval: int = N_EVAL) -> DetDemoAssets:
    """Create (or reuse, when complete for the same settings) the detection demo under ``out_dir``."""
    out = Path(out_dir)
    existing = _complete(out, seed, train_seconds, n_calib, n_eval)
    if existing is not None:
        return existing
    steps = max(1, int(round(train_seconds * STEPS_PER_SECOND)))
    model, train_time, ex, eb = build_scene_demo(
        out, seed, n_calib, n_eval, scenes, _write_eval,
        lambda images, labels: train_detdigitnet(images, labels, steps=steps, seed=seed))
    figures = evaluate_scenes(model, ex, eb)
    meta = {"format": FORMAT, "source": "sklearn.datasets.load_digits, one to three digits per 48x48 scene",
            "seed": seed, "train_seconds": train_seconds, "steps": steps, "batch": BATCH,
            "train_time_s": round(train_time, 2), "arch": ARCH, "preset": "scenes48", "checkpoint": "checkpoint.pt",
            "calib_dir": "calib", "eval_dir": "eval", "labels": "YOLO txt", "n_calib": n_calib, "n_eval": n_eval,
            "classes": [str(d) for d in range(10)], "eval_map50": round(figures["map50"], 4),
            "eval_map": round(figures["map"], 4)}
    write_text(out / "demo.json", json.dumps(meta, indent=2) + "\n")
    return _assets(out, meta)


def _write_eval(folder: Path, images: np.ndarray, boxes: list[np.ndarray]) -> None:
    """Labelled scenes: ``images/NNNN.png`` and their YOLO boxes in ``labels/NNNN.txt``."""
    (folder / "images").mkdir()
    (folder / "labels").mkdir()
    for n, (x, b) in enumerate(zip(images, boxes)):
        save_png(x, folder / "images" / f"{n:04d}.png")
        (folder / "labels" / f"{n:04d}.txt").write_text(yolo_lines(b))


def _complete(out: Path, seed: int, train_seconds: float, n_calib: int, n_eval: int) -> DetDemoAssets | None:
    meta = cached_meta(out, {"format": FORMAT, "seed": seed, "train_seconds": train_seconds, "n_calib": n_calib,
                             "n_eval": n_eval}, {"calib/*.png": n_calib, "eval/labels/*.txt": n_eval})
    return None if meta is None else _assets(out, meta)


def _assets(out: Path, meta: dict[str, Any]) -> DetDemoAssets:
    return DetDemoAssets(checkpoint=out / meta["checkpoint"], calib_dir=out / meta["calib_dir"],
                         eval_dir=out / meta["eval_dir"], arch=meta["arch"], eval_map50=meta.get("eval_map50"),
                         eval_map=meta.get("eval_map"), train_time_s=meta.get("train_time_s"))


def main(argv: list[str] | None = None) -> int:
    return scene_demo_main(argv, "compress.demo.det", make_det_demo_assets, _describe)


def _describe(out: str, a) -> str:
    return (f"detection demo in {out}: checkpoint {a.checkpoint}, arch {a.arch}, labelled mAP@0.5 {a.eval_map50:.2%} "
            f"(mAP@0.5:0.95 {a.eval_map:.2%}), trained {a.train_time_s:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
