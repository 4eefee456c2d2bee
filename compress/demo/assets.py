"""The embedded demo: a trained model plus image folders, made locally with nothing downloaded.

Source: scikit-learn's bundled handwritten digits (1,797 8x8 greyscale images). Each is rendered
as a 32x32 RGB image (random size, position, foreground/background colour and mild noise), a
stratified labelled split is held out as ``eval/<digit>/<n>.png`` (ImageFolder layout), the rest
becomes the unlabeled ``calib/<n>.png`` folder, and DigitNet is trained on the calib split (with
fresh random renderings every epoch) for a fixed number of steps sized to about
``train_seconds`` on a 2-core CPU. ``demo.json`` is written last: its presence means complete.

Deterministic for ``(seed, train_seconds)``: the step count does not depend on the clock.
Run as ``python -m compress.demo.assets OUT_DIR``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compress.util.atomic import atomic_dir, atomic_path, write_text

ARCH = "compress.archs.digits:digitnet"
FORMAT = 1
EVAL_FRACTION = 0.2
# Training steps (batch 64, channels-last) DigitNet took per second on the 2-core development
# machine while shared with other work (measured 6.3/s). It turns train_seconds into a fixed step
# count, so the result does not depend on the clock; an idle or faster machine finishes sooner.
STEPS_PER_SECOND = 6.0
BATCH = 64
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # the "cifar" preset's normalisation
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass(frozen=True)
class DemoAssets:
    checkpoint: Path  # plain state_dict for ARCH
    calib_dir: Path  # unlabeled images, flat
    eval_dir: Path  # labelled images, eval/<digit>/<n>.png
    arch: str = ARCH
    eval_accuracy: float | None = None  # top-1 on eval_dir, measured after training
    train_time_s: float | None = None


def make_demo_assets(out_dir: str | Path, *, seed: int = 0, train_seconds: float = 60) -> DemoAssets:
    """Create (or reuse, when complete for the same settings) the demo assets under ``out_dir``."""
    out = Path(out_dir)
    existing = _complete(out, seed, train_seconds)
    if existing is not None:
        return existing
    images, labels, rng, eval_idx, calib_idx = digits_split(seed)

    out.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out / "eval", overwrite=True) as tmp:
        for n, i in enumerate(eval_idx):
            (tmp / str(labels[i])).mkdir(exist_ok=True)
            save_png(render(images[i], rng), tmp / str(labels[i]) / f"{n:04d}.png")
    with atomic_dir(out / "calib", overwrite=True) as tmp:
        for n, i in enumerate(calib_idx):
            save_png(render(images[i], rng), tmp / f"{n:04d}.png")

    steps = max(1, int(round(train_seconds * STEPS_PER_SECOND)))
    model, train_time = train_digitnet(images[calib_idx], labels[calib_idx], steps=steps, seed=seed)
    import torch

    with atomic_path(out / "checkpoint.pt") as tmp_ckpt:
        torch.save(model.state_dict(), tmp_ckpt)
    accuracy = evaluate_folder(model, out / "eval")
    meta = {
        "format": FORMAT,
        "source": "sklearn.datasets.load_digits (8x8 digits rendered as 32x32 RGB)",
        "seed": seed,
        "train_seconds": train_seconds,
        "steps": steps,
        "batch": BATCH,
        "train_time_s": round(train_time, 2),
        "arch": ARCH,
        "arch_kwargs": {},
        "preset": "cifar",
        "checkpoint": "checkpoint.pt",
        "calib_dir": "calib",
        "eval_dir": "eval",
        "n_calib": len(calib_idx),
        "n_eval": len(eval_idx),
        "classes": [str(c) for c in range(10)],
        "eval_accuracy": round(accuracy, 4),
    }
    write_text(out / "demo.json", json.dumps(meta, indent=2) + "\n")
    return _assets(out, meta)


def render(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One 8x8 digit in [0, 1] -> a 32x32x3 uint8 image with random size, offset and colours."""
    from PIL import Image

    size = int(rng.integers(20, 29))
    mask = np.asarray(Image.fromarray(digit).resize((size, size), Image.BILINEAR))
    canvas = np.zeros((32, 32), dtype=np.float32)
    top, left = (int(v) for v in rng.integers(0, 32 - size + 1, size=2))
    canvas[top:top + size, left:left + size] = np.clip(mask, 0.0, 1.0)
    fg = rng.uniform(0.55, 1.0, size=3).astype(np.float32)
    bg = rng.uniform(0.0, 0.35, size=3).astype(np.float32)
    img = bg + (fg - bg) * canvas[..., None]
    img += rng.normal(0.0, 0.03, size=img.shape).astype(np.float32)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def to_tensor_batch(batch: np.ndarray):
    """uint8 (N, 32, 32, 3) -> normalised float tensor (N, 3, 32, 32), as the cifar preset does."""
    import torch

    x = batch.astype(np.float32) / 255.0
    x = (x - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def train_digitnet(images: np.ndarray, labels: np.ndarray, *, steps: int, seed: int, batch: int = BATCH):
    """Train DigitNet for ``steps`` minibatches; every epoch re-renders the digits afresh."""
    from compress.archs.digits import digitnet

    return fit_digits(digitnet, images, labels, steps=steps, seed=seed, batch=batch, lr=4e-3, weight_decay=5e-4,
                      pct_start=0.15, label_smoothing=0.05, channels_last=True)  # channels-last: ~1.5x faster on CPU


def fit_digits(factory, images: np.ndarray, labels: np.ndarray, *, steps: int, seed: int, batch: int, lr: float,
               weight_decay: float, pct_start: float, label_smoothing: float, clip: float | None = None,
               channels_last: bool = False, log_every: int = 0):
    """Train ``factory()`` on the digits with their labels for ``steps`` minibatches (AdamW, one-cycle schedule),
    re-rendering every digit afresh each epoch; returns (model in eval mode, seconds)."""
    import torch  # torch, and the model built on it, load on first use: `compress demo` checks its assets first
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = factory().to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=pct_start)
    y_all = torch.from_numpy(labels)
    start = time.perf_counter()
    model.train()
    step = 0
    while step < steps:
        x_all = to_tensor_batch(np.stack([render(d, rng) for d in images])).contiguous(memory_format=fmt)
        order = rng.permutation(len(images))
        for b in range(0, len(order) - batch + 1, batch):
            idx = torch.from_numpy(order[b:b + batch])
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx], label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
            step += 1
            if log_every and step % log_every == 0:
                print(f"  step {step}/{steps} loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
            if step >= steps:
                break
    model = model.to(memory_format=torch.contiguous_format).eval()
    return model, time.perf_counter() - start


def evaluate_folder(model, eval_dir: Path) -> float:
    """Top-1 accuracy on an ``eval/<digit>/<n>.png`` folder (images read back from disk)."""
    import torch
    from PIL import Image

    xs, ys = [], []
    for class_dir in sorted(p for p in eval_dir.iterdir() if p.is_dir()):
        for f in sorted(class_dir.glob("*.png")):
            with Image.open(f) as im:
                xs.append(np.asarray(im.convert("RGB")))
            ys.append(int(class_dir.name))
    with torch.no_grad():
        pred = model(to_tensor_batch(np.stack(xs))).argmax(1).numpy()
    return float((pred == np.array(ys)).mean())


def digits_split(seed: int):
    """scikit-learn's digits ((N, 8, 8) in [0, 1]) and labels, the generator seeded with ``seed`` and the
    stratified (eval, calibration) indices drawn from it: the start every embedded demo shares."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    eval_idx, calib_idx = (np.asarray(v) for v in stratified_split(labels, EVAL_FRACTION, rng))
    return images, labels, rng, eval_idx, calib_idx


def write_pngs(folder: Path, images) -> None:
    """``images`` as ``0000.png``, ``0001.png``... in ``folder``, written atomically."""
    with atomic_dir(folder, overwrite=True) as tmp:
        for n, x in enumerate(images):
            save_png(x, tmp / f"{n:04d}.png")


def save_weights(model, path: Path) -> None:
    """The model's state dict at ``path``, written atomically."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)


def build_scene_demo(out: Path, seed: int, n_calib: int, n_eval: int, scenes, write_eval, train):
    """The scene demos' build: split the digits (``seed``), ``n_eval`` labelled scenes written by
    ``write_eval(folder, images, targets)`` into ``out/eval``, ``n_calib`` unlabeled ones into ``out/calib``,
    then ``train(digit_images, digit_labels)`` on the calibration digits -> (model, seconds), saved as
    ``out/checkpoint.pt``. Returns (model, seconds, eval images, eval targets)."""
    images, labels, rng, eval_idx, calib_idx = digits_split(seed)
    out.mkdir(parents=True, exist_ok=True)
    ex, ey = scenes(images[eval_idx], labels[eval_idx], n_eval, rng)
    with atomic_dir(out / "eval", overwrite=True) as tmp:
        write_eval(tmp, ex, ey)
    cx, _ = scenes(images[calib_idx], labels[calib_idx], n_calib, rng)
    write_pngs(out / "calib", cx)
    model, seconds = train(images[calib_idx], labels[calib_idx])
    save_weights(model, out / "checkpoint.pt")
    return model, seconds, ex, ey


def cached_meta(out: Path, settings: dict[str, Any], files: dict[str, int]) -> dict[str, Any] | None:
    """``demo.json`` of an earlier build in ``out`` made with ``settings`` whose checkpoint is there and whose
    ``files`` (glob pattern under ``out`` -> how many) are all there, or None: the scene demos reuse it."""
    try:
        meta = json.loads((out / "demo.json").read_text())
    except (OSError, ValueError):
        return None
    if any(meta.get(key) != value for key, value in settings.items()) or not (out / "checkpoint.pt").is_file():
        return None
    return meta if all(len(list(out.glob(pattern))) == n for pattern, n in files.items()) else None


def scene_demo_main(argv: list[str] | None, module: str, make, describe) -> int:
    """``python -m MODULE OUT_DIR [TRAIN_SECONDS]`` of a scene demo: ``make`` builds, ``describe`` says what."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (1, 2):
        print(f"usage: python -m {module} OUT_DIR [TRAIN_SECONDS]", file=sys.stderr)
        return 2
    assets = make(argv[0], **({"train_seconds": float(argv[1])} if len(argv) == 2 else {}))
    print(describe(argv[0], assets), file=sys.stderr)
    return 0


def stratified_split(labels: np.ndarray, fraction: float, rng: np.random.Generator):
    eval_idx: list[int] = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        eval_idx += members[: int(round(len(members) * fraction))].tolist()
    held = set(eval_idx)
    calib_idx = [i for i in rng.permutation(len(labels)).tolist() if i not in held]
    return sorted(eval_idx, key=lambda i: (labels[i], i)), calib_idx


def save_png(img: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(img).save(path, format="PNG")


def _complete(out: Path, seed: int, train_seconds: float) -> DemoAssets | None:
    """The existing assets if ``demo.json`` says they were made with these settings and all files are there."""
    try:
        meta = json.loads((out / "demo.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("format") != FORMAT or meta.get("seed") != seed or meta.get("train_seconds") != train_seconds:
        return None
    n_calib = len(list((out / "calib").glob("*.png")))
    n_eval = len(list((out / "eval").glob("*/*.png")))
    if not (out / "checkpoint.pt").is_file() or n_calib != meta.get("n_calib") or n_eval != meta.get("n_eval"):
        return None
    return _assets(out, meta)


def _assets(out: Path, meta: dict[str, Any]) -> DemoAssets:
    return DemoAssets(
        checkpoint=out / meta["checkpoint"],
        calib_dir=out / meta["calib_dir"],
        eval_dir=out / meta["eval_dir"],
        arch=meta["arch"],
        eval_accuracy=meta.get("eval_accuracy"),
        train_time_s=meta.get("train_time_s"),
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m compress.demo.assets OUT_DIR", file=sys.stderr)
        return 2
    assets = make_demo_assets(argv[0])
    print(
        f"demo assets in {argv[0]}: checkpoint {assets.checkpoint}, calib {assets.calib_dir}, "
        f"eval {assets.eval_dir}, arch {assets.arch}, eval accuracy {assets.eval_accuracy:.2%}, "
        f"trained {assets.train_time_s:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
