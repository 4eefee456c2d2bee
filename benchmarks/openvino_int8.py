"""OpenVINO INT8: the calibrated Q/DQ ONNX model converted to IR (what ``compress export`` writes) vs NNCF
post-training quantization of the FP32 IR, on one compress output folder.

    .venv/bin/python benchmarks/openvino_int8.py OUT --calib ../shared/data/cifar10/calib \\
        --eval ../shared/data/cifar10/eval [--original ../shared/models/resnet32-cifar10.th --arch cifar_resnet32]

``OUT`` holds ``model.onnx``, ``model.openvino.xml`` and ``model.int8.openvino.xml`` (``compress export OUT
--format int8,openvino,openvino-int8``). NNCF (``pip install nncf``) quantizes ``model.openvino.xml`` with the
same calibration images as the export (the held-out, then the importance images of ``--calib`` split as the
prune split them, first 256), with its default (performance: symmetric activations) and its mixed
(asymmetric activations) presets. Printed and written as JSON (``--json``):
each file's size, top-1 and top-1 agreement with the FP32 IR and with the original model (``--original``) on
``--eval``, and p50 latency at batches 1 and 32 of FP32, Q/DQ and NNCF timed interleaved
(``export.latency.time_interleaved``: preempted calls set aside). Results: benchmarks/RESULTS.md, "Edge runtimes".
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CALIBRATION_IMAGES = 256  # as compress.run.deploy


def calibration_images(calib: str, preprocess) -> torch.Tensor:
    from compress.calibration import load_calibration

    data = load_calibration(calib, preprocess, seed=0)
    parts = []
    for source in (data.holdout, data.importance):
        parts.extend([source] if isinstance(source, torch.Tensor) else [b[0] for b, _ in zip(source, range(4))])
    return torch.cat(parts)[:CALIBRATION_IMAGES]


def nncf_quantize(fp32_xml: Path, images: torch.Tensor, out_xml: Path, preset: str = "performance") -> Path:
    """NNCF post-training quantization; ``preset`` performance (symmetric activations, NNCF's default) or mixed
    (asymmetric activations, as the Q/DQ model's unsigned ones)."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(fp32_xml))
    batches = [images[i:i + 1].numpy() for i in range(len(images))]
    quantized = nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches),
                              preset=nncf.QuantizationPreset(preset))
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    return out_xml


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--calib", required=True)
    ap.add_argument("--eval", required=True)
    ap.add_argument("--original", help="the original checkpoint, for top-1 agreement with it")
    ap.add_argument("--arch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=6.0, help="minimum timing seconds per batch size")
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    from compress.export.latency import time_interleaved
    from compress.export.runtimes import get
    from compress.export.runtimes.openvino_rt import ir_size
    from compress.models.loading import load_model, load_saved
    from compress.tasks.classify import ClassifyTask

    folder = Path(args.folder)
    loaded = load_saved(folder)
    preprocess = loaded.preprocess()
    images = calibration_images(args.calib, preprocess)
    pairs = ClassifyTask().labelled(args.eval, preprocess)
    x_eval, labels = pairs if isinstance(pairs, tuple) else (torch.cat([b[0] for b in pairs]), torch.cat([b[1] for b in pairs]))
    ov_rt = get("openvino")
    with tempfile.TemporaryDirectory(prefix="ov-nncf-") as tmp:
        files = {"fp32": folder / "model.openvino.xml", "qdq": folder / "model.int8.openvino.xml",
                 "nncf": nncf_quantize(folder / "model.openvino.xml", images, Path(tmp) / "model.nncf.xml"),
                 "nncf-mixed": nncf_quantize(folder / "model.openvino.xml", images, Path(tmp) / "model.nncfm.xml",
                                             "mixed")}
        logits = {k: ov_rt.predict(p, x_eval.numpy()) for k, p in files.items()}
        ref = None
        if args.original:
            original = load_model(args.original, arch=args.arch).model.eval()
            with torch.inference_mode():
                ref = torch.cat([original(x_eval[i:i + 256]) for i in range(0, len(x_eval), 256)]).numpy()
        out = {"files": {}, "latency_ms": {}, "eval_images": len(x_eval), "calibration_images": len(images)}
        for k, lg in logits.items():
            pred = lg.argmax(1)
            out["files"][k] = {"size_bytes": ir_size(files[k]), "top1": float((pred == labels.numpy()).mean()),
                               "agreement_with_fp32": float((pred == logits["fp32"].argmax(1)).mean()),
                               "agreement_with_original": None if ref is None else float((pred == ref.argmax(1)).mean())}
        for batch in (1, 32):
            example = torch.randn(batch, *x_eval.shape[1:], generator=torch.Generator().manual_seed(0))
            runners = {k: ov_rt.runner(p, None, example, args.threads, "cpu") for k, p in files.items()}
            stats = time_interleaved(runners, warmup=10, iters=50, min_seconds=args.seconds, batch=batch,
                                     threads=args.threads)
            out["latency_ms"][batch] = {k: {"p50": s.p50, "p50_all": s.p50_all, "preempted": s.preempted,
                                            "kept": s.kept, "iters": s.iters} for k, s in stats.items()}
    for k, f in out["files"].items():
        lat = "  ".join(f"b{b} {out['latency_ms'][b][k]['p50']:.3f} ms" for b in (1, 32))
        agr = f", agreement with original {f['agreement_with_original']:.2%}" if f["agreement_with_original"] is not None else ""
        print(f"{k:10s} {f['size_bytes'] / 2**10:7.0f} KiB  top-1 {f['top1']:.2%}  agreement with FP32 "
              f"{f['agreement_with_fp32']:.2%}{agr}  {lat}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
