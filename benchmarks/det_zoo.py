"""Detectors end to end: prune the raw-output network at --ratio 0.4, prove, reload, ONNX parity.

torchvision ssdlite320_mobilenet_v3_large, fasterrcnn_mobilenet_v3_large_320_fpn, fcos_resnet50_fpn
(random weights, ``weights_backbone=none``) and, when ``ultralytics`` is installed, YOLOv8n and YOLO11n
built from their yaml (random init, offline), through the real CLI::

    compress prune ckpt.pt --arch torchvision:NAME --arch-kwargs weights_backbone=none \\
        --calib imgs/ --input-size SIZE --ratio 0.4 --no-recover --export onnx --json
    compress prune ckpt.pt --arch compress.detection.yolo:build --arch-kwargs cfg=yolov8n.yaml ...

then reloads the output with ``compress.load`` (its raw outputs must match the exported ONNX, which the
export verified against the in-memory pruned model) and runs the reloaded whole detector
(``.detector``: decoding, NMS) once. Prints MACs of the raw network, the proof's max diff, ONNX parity and
wall time. Run: ``python benchmarks/det_zoo.py [--size 160] [--models a,b]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import fit_batchnorm_to_noise  # noqa: E402

TORCHVISION = ("ssdlite320_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_320_fpn", "fcos_resnet50_fpn")
YOLO = ("yolov8n", "yolo11n")


def arch_of(name: str) -> tuple[str, str]:
    if name in YOLO:
        return "compress.detection.yolo:build", f"cfg={name}.yaml"
    return f"torchvision:{name}", "weights_backbone=none"


def random_checkpoint(name: str, path: Path, size: int, seed: int = 0) -> None:
    """Random weights whose BatchNorm statistics fit random inputs (estimated through the raw network), so
    activations are not degenerate and the proof compares real signals."""
    import torch

    from compress.models.arch import parse_arch_kwargs, resolve_arch

    torch.manual_seed(seed)
    arch, kwargs = arch_of(name)
    model = resolve_arch(arch, parse_arch_kwargs(kwargs))
    fit_batchnorm_to_noise(model, size)
    torch.save(model.state_dict(), path)


def run(name: str, work: Path, size: int, images: Path, ratio: float) -> dict:
    import torch

    import compress
    from compress.cli.main import main
    from compress.export.verify import verify_onnx

    ckpt, out = work / f"{name}.pt", work / f"{name}.pruned"
    random_checkpoint(name, ckpt, size)
    arch, kwargs = arch_of(name)
    started = time.perf_counter()
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main(["prune", str(ckpt), "--arch", arch, "--arch-kwargs", kwargs, "--task", "detect",
                  "--calib", str(images), "--input-size", str(size), "--ratio", str(ratio), "--no-recover",
                  "--export", "onnx", "--no-progress", "--json", "-o", str(out), "--overwrite"])
        except SystemExit as exit_:
            if exit_.code:
                raise RuntimeError(f"{name}: compress prune exited {exit_.code}: {stderr.getvalue()[-2000:]}") from None
    seconds = time.perf_counter() - started
    summary = json.loads(stdout.getvalue())
    proof = re.search(r"proved against the zeroed original \(max diff ([0-9.e+-]+)\)", stderr.getvalue())
    reloaded = compress.load(str(out)).model.eval()
    same = verify_onnx(out / "model.onnx", reloaded, torch.randn(2, 3, size, size), raise_on_fail=False).passed
    with torch.no_grad():  # the whole pruned detector still runs (decoding, NMS) on [0, 1] images
        detector = reloaded.detector.eval()
        detections = detector(torch.rand(1, 3, size, size)) if name in YOLO else detector([torch.rand(3, size, size)])
    onnx = json.loads((out / "export.json").read_text())["onnx"]["verification"]
    return {"model": name, "macs_before": summary["macs_before"], "macs_after": summary["macs_after"],
            "macs_ratio": summary["macs_after"] / summary["macs_before"],
            "params_before": summary["params_before"], "params_after": summary["params_after"],
            "proof_max_diff": float(proof.group(1)) if proof else None, "reload_matches_onnx": same,
            "detector_runs": detections is not None, "onnx_passed": onnx["passed"],
            "onnx_max_abs_diff": onnx["max_abs_diff"], "onnx_threshold": onnx["threshold"],
            "seconds": round(seconds, 1)}


def main(argv=None) -> int:
    from seg_zoo import random_images

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--ratio", type=float, default=0.4)
    parser.add_argument("--models", default=",".join(TORCHVISION + YOLO))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="det-zoo-") as tmp:
        work = Path(tmp)
        images = random_images(work / "imgs", args.images, args.size)
        for name in args.models.split(","):
            rows.append(run(name, work, args.size, images, args.ratio))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"| model | raw-network MACs at {args.size}x{args.size} | pruned (ratio {args.ratio}) | MAC ratio | params "
          "| proof max diff | reload | ONNX max abs diff (threshold) | wall s |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['macs_before'] / 1e6:.1f} M | {r['macs_after'] / 1e6:.1f} M | {r['macs_ratio']:.2f}x "
              f"| {r['params_before'] / 1e6:.2f} M -> {r['params_after'] / 1e6:.2f} M | {r['proof_max_diff']:.1e} "
              f"| {'matches the ONNX' if r['reload_matches_onnx'] else 'DIFFERS'} "
              f"| {r['onnx_max_abs_diff']:.1e} ({r['onnx_threshold']:.1e}) | {r['seconds']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
