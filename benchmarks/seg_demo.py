"""The embedded segmentation demo at --ratio 0.5 with the default recovery: mIoU figures and time.

Builds (or reuses) the demo assets (``compress.demo.seg``: SegDigitNet trained on synthetic digit scenes),
then runs the real CLI ``compress prune CKPT --arch segdigits --calib calib/ --eval eval/ --ratio 0.5 --json``
and prints the labelled mIoU of the original, one-shot and recovered models, the recovered model's mIoU
against the original's argmax on the held-out calibration images and on the eval scenes (re-measured from
the reloaded output), MACs and the recovery's wall time. Exit 1 when mIoU vs the original is below 0.9 or
the labelled mIoU is more than 3 points below the original's.
Run: ``python benchmarks/seg_demo.py [--dir .demo/seg-assets] [--seed 0] [-- extra prune options]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(ROOT / ".demo" / "seg-assets"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    parser.add_argument("extra", nargs="*", help="more prune options, after --")
    args = parser.parse_args(argv)

    import tempfile

    import compress
    from compress.calibrate.preprocess import Preprocess
    from compress.cli.main import main as cli
    from compress.demo.seg import make_seg_demo_assets
    from compress.tasks import get_task
    from compress.tasks.evaluate import compare_models, labelled_pairs

    started = time.perf_counter()
    assets = make_seg_demo_assets(args.dir, seed=args.seed)
    print(f"assets: {assets.checkpoint} (labelled mIoU {assets.eval_miou:.2%}, trained {assets.train_time_s:.0f} s; "
          f"{time.perf_counter() - started:.0f} s to make or reuse)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="seg-demo-") as tmp:
        out = Path(args.out or Path(tmp) / "out")
        stdout = io.StringIO()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        with contextlib.redirect_stdout(stdout):
            try:
                cli(["prune", str(assets.checkpoint), "--arch", "segdigits", "--calib", str(assets.calib_dir),
                     "--eval", str(assets.eval_dir), "--ratio", "0.5", "--seed", str(args.seed), "--no-progress",
                     "--json", "-o", str(out), "--overwrite", *args.extra])
            except SystemExit as exit_:
                if exit_.code:
                    return int(exit_.code)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        s = json.loads(stdout.getvalue())
        task = get_task("segment")
        from compress.models.loading import load_from_spec

        pruned = compress.load(str(out))  # the reloaded output, compared with its original on the eval scenes
        teacher = load_from_spec(pruned.spec).model
        data = task.labelled(str(assets.eval_dir), Preprocess.from_dict(pruned.spec.preprocess))
        (_, student_miou), eval_agreement = compare_models(task, [teacher, pruned.model], labelled_pairs(data))
    gap = (s["miou_before"] - s["miou_recovered"]) * 100
    print("| | original | one-shot | recovered |")
    print("|---|---:|---:|---:|")
    print(f"| labelled mIoU (eval, {s['calibration']['found']} calib / eval scenes) | {s['miou_before']:.2%} "
          f"| {s['miou_pruned']:.2%} | {s['miou_recovered']:.2%} (reloaded: {student_miou:.2%}) |")
    print(f"| mIoU vs original, held-out calib ({s['calibration']['holdout']}) | 100 % | {s['agreement_pruned']:.2%} "
          f"| {s['agreement_recovered']:.2%} |")
    print(f"| mIoU vs original, eval scenes | 100 % | - | {eval_agreement:.2%} |")
    print(f"| MACs | {s['macs_before'] / 1e6:.2f} M | {s['macs_after'] / 1e6:.2f} M | {s['macs_after'] / 1e6:.2f} M |")
    print(f"\nrecovery: {s['recover_steps']} steps ({s['recover_epochs']} epochs, lr {s['distill']['lr']}) in "
          f"{s['recover_seconds']:.0f} s on {s['recover_device']} ({s['recover_precision']}); labelled gap {gap:.2f} "
          f"points; whole prune {s['seconds_total']:.0f} s wall, {cpu:.0f} CPU-seconds (all threads)")
    return 0 if s["agreement_recovered"] >= 0.9 and gap <= 3.0 else 1


if __name__ == "__main__":
    sys.exit(main())
