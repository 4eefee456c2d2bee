"""torchvision segmentation models end to end: prune at --ratio 0.4, prove, reload, ONNX parity.

For each of lraspp_mobilenet_v3_large, deeplabv3_mobilenet_v3_large and fcn_resnet50 (random weights,
``weights_backbone=none``; BatchNorm statistics estimated on random images so the activations are not
degenerate and the proof compares real signals), runs the real CLI::

    compress prune ckpt.pt --arch torchvision:NAME --arch-kwargs weights_backbone=none \\
        --calib imgs/ --input-size SIZE --ratio 0.4 --no-recover --export onnx --json

then reloads the output with ``compress.load`` (the reloaded model must match the exported ONNX, which the
export verified against the in-memory pruned model) and prints MACs, the ONNX parity figures of every
output (from export.json) and the wall time. Run:
``python benchmarks/seg_zoo.py [--size 64] [--models a,b]`` (fcn_resnet50 is heavy: keep the size small).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import fit_batchnorm_to_noise  # noqa: E402

MODELS = ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "fcn_resnet50")


def random_checkpoint(name: str, path: Path, size: int, seed: int = 0) -> None:
    """A random-weight torchvision segmenter whose BatchNorm statistics fit random inputs."""
    import warnings

    import torch
    import torchvision

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torchvision.models.get_model(name, weights=None, weights_backbone=None)
    fit_batchnorm_to_noise(model, size)
    torch.save(model.state_dict(), path)


def random_images(folder: Path, n: int, size: int, seed: int = 0) -> Path:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def run(name: str, work: Path, size: int, images: Path) -> dict:
    import contextlib
    import io

    import torch

    import compress
    from compress.cli.main import main

    ckpt, out = work / f"{name}.pt", work / f"{name}.pruned"
    random_checkpoint(name, ckpt, size)
    started = time.perf_counter()
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        try:
            main(["prune", str(ckpt), "--arch", f"torchvision:{name}", "--arch-kwargs", "weights_backbone=none",
                  "--calib", str(images), "--input-size", str(size), "--ratio", "0.4", "--no-recover",
                  "--export", "onnx", "--no-progress", "--json", "-o", str(out), "--overwrite"])
        except SystemExit as exit_:
            if exit_.code:
                raise RuntimeError(f"{name}: compress prune exited {exit_.code}") from None
    seconds = time.perf_counter() - started
    summary = json.loads(stdout.getvalue())
    from compress.export.verify import verify_onnx

    reloaded = compress.load(str(out)).model.eval()
    same = verify_onnx(out / "model.onnx", reloaded, torch.randn(4, 3, size, size), raise_on_fail=False).passed
    onnx = json.loads((out / "export.json").read_text())["onnx"]["verification"]
    return {"model": name, "task": summary["task"], "macs_before": summary["macs_before"],
            "macs_after": summary["macs_after"], "macs_ratio": summary["macs_after"] / summary["macs_before"],
            "params_before": summary["params_before"], "params_after": summary["params_after"],
            "reload_identical": same, "onnx_passed": onnx["passed"], "onnx_max_abs_diff": onnx["max_abs_diff"],
            "onnx_threshold": onnx["threshold"], "onnx_pixel_agreement": onnx["top1_agreement"],
            "seconds": round(seconds, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="seg-zoo-") as tmp:
        work = Path(tmp)
        images = random_images(work / "imgs", args.images, args.size)
        for name in args.models.split(","):
            rows.append(run(name, work, args.size, images))
            print(json.dumps(rows[-1]), file=sys.stderr)
    print(f"| model | MACs at {args.size}x{args.size} | pruned (ratio 0.4) | MAC ratio | params | proof | reload "
          "| ONNX max abs diff (threshold) | ONNX pixel agreement | wall s |")
    print("|---|---:|---:|---:|---:|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['macs_before'] / 1e6:.1f} M | {r['macs_after'] / 1e6:.1f} M | {r['macs_ratio']:.2f}x "
              f"| {r['params_before'] / 1e6:.2f} M -> {r['params_after'] / 1e6:.2f} M | passed "
              f"| {'matches the ONNX' if r['reload_identical'] else 'DIFFERS'} "
              f"| {r['onnx_max_abs_diff']:.1e} ({r['onnx_threshold']:.1e}) | {r['onnx_pixel_agreement']:.2%} "
              f"| {r['seconds']} |")
    ok = all(r["macs_ratio"] <= 0.75 and r["reload_identical"] and r["onnx_passed"] for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
