"""INT8 (onnxruntime static QDQ, cpu target) vs FP32 for one ONNX model: size, top-1, CPU latency.

    .venv/bin/python benchmarks/bench_int8.py MODEL.onnx --calib DIR --eval DIR
    .venv/bin/python benchmarks/bench_int8.py ../shared/models/resnet20-cifar10.th \\
        --arch compress.archs.cifar_resnet:resnet20          # exports the checkpoint first

``--eval`` is a labelled folder (``eval/<class>/<image>``, classes in sorted order). Images are
decoded with PIL: RGB / 255, resized to the model's input size if needed, normalised with the
ImageNet mean/std (``--mean`` / ``--std`` to change). Latency: onnxruntime CPU, fixed threads,
FP32 and INT8 timed interleaved (``export.latency``), p50 reported.

Results: benchmarks/RESULTS.md, section "INT8 vs FP32".
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT / ".." / "shared"


def decode(paths, size: tuple[int, int], mean, std) -> np.ndarray:
    from PIL import Image

    m = np.asarray(mean, np.float32)[:, None, None]
    s = np.asarray(std, np.float32)[:, None, None]
    out = []
    for p in paths:
        img = Image.open(p).convert("RGB")
        if img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), Image.BILINEAR)
        out.append((np.asarray(img, np.float32).transpose(2, 0, 1) / 255.0 - m) / s)
    return np.stack(out).astype(np.float32)


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp"))


def export_checkpoint(ckpt: Path, arch: str, out: Path) -> Path:
    import torch

    from compress.export.onnx import export_onnx

    module, _, name = arch.partition(":")
    model = getattr(importlib.import_module(module), name)()
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    state = state.get("state_dict", state)
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    return export_onnx(model.eval(), torch.zeros(1, 3, 32, 32), out).path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="FP32 .onnx, or a checkpoint with --arch")
    ap.add_argument("--arch", help="module:factory to rebuild a checkpoint (e.g. compress.archs.cifar_resnet:resnet20)")
    ap.add_argument("--calib", type=Path, default=SHARED / "data" / "cifar10" / "calib")
    ap.add_argument("--eval", type=Path, default=SHARED / "data" / "cifar10" / "eval")
    ap.add_argument("--calib-count", type=int, default=512)
    ap.add_argument("--method", default="minmax", choices=("minmax", "entropy", "percentile"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--min-seconds", type=float, default=5.0)
    ap.add_argument("--mean", type=float, nargs=3, default=(0.485, 0.456, 0.406))
    ap.add_argument("--std", type=float, nargs=3, default=(0.229, 0.224, 0.225))
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    import onnx

    from compress.calibrate.readers import TensorCalibrationReader
    from compress.export.latency import ort_runner, time_interleaved
    from compress.export.quantize import quantize_int8
    from compress.export.sizes import artifact_size
    from compress.export.verify import compare_sessions, make_session, run_session

    with tempfile.TemporaryDirectory(prefix="bench-int8-") as tmp:
        fp32 = args.model
        if fp32.suffix != ".onnx":
            if not args.arch:
                ap.error("a checkpoint needs --arch module:factory")
            fp32 = export_checkpoint(fp32, args.arch, Path(tmp) / "fp32.onnx")
        dims = onnx.load(str(fp32), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
        size = (dims[2].dim_value, dims[3].dim_value)
        calib = decode(image_files(args.calib)[:args.calib_count], size, args.mean, args.std)
        q = quantize_int8(fp32, Path(tmp) / "int8.onnx", TensorCalibrationReader(calib, "input"),
                          method=args.method, target="cpu")
        classes = sorted(p.name for p in args.eval.iterdir() if p.is_dir())
        files = [(f, i) for i, c in enumerate(classes) for f in image_files(args.eval / c)]
        x = decode([f for f, _ in files], size, args.mean, args.std)
        y = np.array([i for _, i in files])
        top1 = {name: float(np.mean(run_session(make_session(p, threads=args.threads), x).argmax(1) == y))
                for name, p in (("fp32", fp32), ("int8", q.path))}
        agree = compare_sessions(fp32, q.path, x)
        results = {"model": str(args.model), "threads": args.threads, "method": args.method,
                   "calib_images": len(calib), "eval_images": len(y),
                   "size_bytes": {"fp32": artifact_size(fp32), "int8": artifact_size(q.path)},
                   "top1": top1, "agreement": agree.top1_agreement, "latency_ms": {}}
        for batch in (1, 32):
            xb = x[:batch]
            stats = time_interleaved({"fp32": ort_runner(fp32, xb, args.threads), "int8": ort_runner(q.path, xb, args.threads)},
                                     warmup=args.warmup, iters=args.iters, min_seconds=args.min_seconds, batch=batch)
            results["latency_ms"][batch] = {k: v.to_dict() for k, v in stats.items()}

    s, t = results["size_bytes"], results["top1"]
    print(f"model            {args.model.name}  ({results['eval_images']} eval images, {len(calib)} calibration images, "
          f"{args.method}, {args.threads} threads)")
    print(f"file size        fp32 {s['fp32'] / 1e6:.3f} MB   int8 {s['int8'] / 1e6:.3f} MB   ({s['int8'] / s['fp32']:.2f}x)")
    print(f"top-1            fp32 {t['fp32'] * 100:.2f} %   int8 {t['int8'] * 100:.2f} %   "
          f"(delta {(t['int8'] - t['fp32']) * 100:+.2f} points; top-1 agreement {results['agreement'] * 100:.2f} %)")
    for batch, lat in results["latency_ms"].items():
        f, i = lat["fp32"], lat["int8"]
        print(f"latency batch {batch:<2} fp32 p50 {f['p50']:.3f} ms (p90 {f['p90']:.3f})   int8 p50 {i['p50']:.3f} ms "
              f"(p90 {i['p90']:.3f})   int8 {f['p50'] / i['p50']:.2f}x faster  [{f['iters']} runs each]")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
