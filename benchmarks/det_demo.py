"""The embedded detector at --ratio 0.5 with the default recovery: mAP figures, time, and output vs feature
distillation.

Builds (or reuses) the demo assets (``compress.demo.det``: DetDigitNet trained on synthetic digit scenes with
YOLO boxes), then runs the real CLI ``compress prune CKPT --arch detdigits --calib calib/ --eval eval/ --ratio
0.5 --json`` once per recovery variant (``plain``: output distillation, the default; ``features``: plus
normalised feature matching, ``--recover-features 1``) and prints per variant: labelled mAP@0.5 and
mAP@0.5:0.95 of the original, one-shot and recovered models, the recovered detector's mAP against the
original's boxes on the held-out calibration images, MACs, recovery steps, wall and CPU seconds.
Exit 1 when a variant's mAP@0.5 vs the original is below 0.8 or its labelled mAP@0.5 more than 3 points
below the original's.
Run: ``python benchmarks/det_demo.py [--dir .demo/det-assets] [--seed 0] [--variants plain,features]
[-- extra prune options]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VARIANTS = {"plain": [], "features": ["--recover-features", "1"]}


def run(assets, variant: str, seed: int, extra: list[str]) -> dict:
    from compress.cli.main import main as cli

    with tempfile.TemporaryDirectory(prefix="det-demo-") as tmp:
        stdout = io.StringIO()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        with contextlib.redirect_stdout(stdout):
            try:
                cli(["prune", str(assets.checkpoint), "--arch", "detdigits", "--calib", str(assets.calib_dir),
                     "--eval", str(assets.eval_dir), "--ratio", "0.5", "--seed", str(seed), "--no-progress",
                     "--json", "-o", str(Path(tmp) / "out"), "--overwrite", *VARIANTS[variant], *extra])
            except SystemExit as exit_:
                if exit_.code:
                    raise
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    s = json.loads(stdout.getvalue())
    s["cpu_seconds"] = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return s


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(ROOT / ".demo" / "det-assets"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default="plain,features")
    parser.add_argument("extra", nargs="*", help="more prune options, after --")
    args = parser.parse_args(argv)

    from compress.demo.det import make_det_demo_assets

    started = time.perf_counter()
    assets = make_det_demo_assets(args.dir, seed=args.seed)
    print(f"assets: {assets.checkpoint} (labelled mAP@0.5 {assets.eval_map50:.2%}, mAP@0.5:0.95 {assets.eval_map:.2%}, "
          f"trained {assets.train_time_s:.0f} s; {time.perf_counter() - started:.0f} s to make or reuse)", file=sys.stderr)
    ok = True
    print("| recovery | labelled mAP@0.5: original / one-shot / recovered | mAP@0.5:0.95 original / recovered "
          "| mAP@0.5 / 0.5:0.95 vs original (held out) | MACs | steps | recovery s | prune wall s | CPU s |")
    print("|---|---|---|---|---|---:|---:|---:|---:|")
    for variant in args.variants.split(","):
        s = run(assets, variant, args.seed, args.extra)
        gap = (s["map50_before"] - s["map50_recovered"]) * 100
        ok &= s["map50_vs_original"] is not None and s["map50_vs_original"] >= 0.8 and gap <= 3.0
        print(f"| {variant} | {s['map50_before']:.2%} / {s['map50_pruned']:.2%} / {s['map50_recovered']:.2%} "
              f"(gap {gap:.2f} points) | {s['map_before']:.2%} / {s['map_after']:.2%} "
              f"| {s['map50_vs_original']:.2%} / {s['map_vs_original']:.2%} ({s['original_boxes']} boxes) "
              f"| {s['macs_before'] / 1e6:.2f} M -> {s['macs_after'] / 1e6:.2f} M | {s['recover_steps']} "
              f"| {s['recover_seconds']:.0f} | {s['seconds_total']:.0f} | {s['cpu_seconds']:.0f} |", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
