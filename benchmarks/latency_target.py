"""Latency-aware pruning on the shared ResNet-32 against plain importance ranking at the same MACs.

For each batch size: ``compress prune --target-speedup S --backend onnxruntime --batch B`` (the
latency model's held-out prediction error, the target, predicted and measured latency), then two
plain baselines at the MAC count the latency-aware run ended at: the tool's default ranking (global
importance, surviving widths rounded to multiples of 8) and importance alone (``--round-to 1``).
``--target-macs`` keeps the largest plan at or under its budget, so plain plans come in steps;
each baseline is built at the step just under (``<=``, timed only) and just over (``>=``,
recovered) the latency-aware MACs, and its latency at exactly those MACs is interpolated between
the two. Recovery uses the defaults unless --no-recover. At the end the original and every
pruned network are exported to ONNX and timed interleaved on onnxruntime at that batch, with
their top-1 on eval/ beside.

    .venv/bin/python benchmarks/latency_target.py [--batches 1,32] [--threads 2] [--speedup 2] \
        [--no-recover] [--out DIR] [-- extra prune options, e.g. --prune-stem]

Results, run by run with seeds and machines: benchmarks/RESULTS.md, section
"Latency-aware pruning".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import CALIB, EVAL, MODELS, ROOT, load_cifar, require_shared


def prune(args: list[str], out: Path, *, export: bool = True, show: bool = True) -> dict:
    cmd = [sys.executable, "-m", "compress", "prune", str(MODELS["resnet32"]), "--arch", "cifar_resnet32",
           "--calib", str(CALIB), "--eval", str(EVAL), "-o", str(out), "--overwrite", "--no-progress", "--json",
           *(["--export", "onnx"] if export else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"prune {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    for line in proc.stderr.splitlines():
        if show and line.startswith(("latency", "per-layer", "plan:")):
            print("   ", line, flush=True)
    return json.loads(proc.stdout)


def macs_target_at_least(macs: int, before: int, extra: list[str], scratch: Path) -> float:
    """The smallest ``--target-macs`` (to 1e-4) whose plain plan keeps at least ``macs`` MACs.

    Plain ranking keeps the largest MAC count at or under its target, so its plans form steps;
    this finds the first step at or above the latency-aware count (a handful of --no-recover runs).
    ``before`` is the unpruned MAC count.
    """
    def kept(target: float) -> int:
        return prune(["--target-macs", f"{target:.4f}", *extra, "--no-recover"], scratch,
                     export=False, show=False)["macs_after"]

    lo, hi = int(macs / before * 1e4), 10000  # in units of 1e-4; kept(lo) <= macs
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if kept(mid / 1e4) >= macs:
            hi = mid
        else:
            lo = mid
    return hi / 1e4


def interleaved(paths: dict[str, Path], batch: int, threads: int) -> dict[str, float]:
    import torch

    from compress.export.latency import ort_runner, time_interleaved

    x = torch.randn(batch, 3, 32, 32)
    runners = {name: ort_runner(p, x, threads=threads) for name, p in paths.items()}
    stats = time_interleaved(runners, warmup=10, iters=50, min_seconds=6, batch=batch, threads=threads)
    return {name: s.p50 for name, s in stats.items()}


def at_macs(macs: float, below: tuple[float, float], above: tuple[float, float]) -> float:
    """Latency linearly interpolated in MACs between the two bracketing plain plans."""
    (m0, t0), (m1, t1) = below, above
    return t0 if m1 == m0 else t0 + (t1 - t0) * (macs - m0) / (m1 - m0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--threads", default=str(os.cpu_count()),
                        help="CPU threads, one value or one per batch (e.g. 1,2 with --batches 1,32)")
    parser.add_argument("--speedup", type=float, default=2.0)
    parser.add_argument("--no-recover", action="store_true")
    parser.add_argument("--out", default=None)
    parser.add_argument("extra", nargs="*", help="extra compress prune options, after --")
    args = parser.parse_args()
    require_shared()
    import torch

    from compress.export.onnx import export_onnx

    common = [*args.extra, *(["--no-recover"] if args.no_recover else [])]
    # plain baselines: the tool's default ranking (surviving widths rounded to 8) and importance alone
    baselines = {"plain": [], "plain/1": ["--round-to", "1"]}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.out or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        original = tmp / "original.onnx"
        export_onnx(load_cifar("resnet32").model, torch.randn(1, 3, 32, 32), original)
        rows = []
        batches = [int(b) for b in args.batches.split(",")]
        threads = [int(t) for t in args.threads.split(",")]
        threads = threads * len(batches) if len(threads) == 1 else threads
        for batch, n_threads in zip(batches, threads):
            print(f"batch {batch}, {n_threads} threads: latency-aware --target-speedup {args.speedup}", flush=True)
            folders = {"latency-aware": tmp / f"latency-b{batch}"}
            plans = {"latency-aware": prune(["--target-speedup", str(args.speedup), "--backend", "onnxruntime",
                                             "--batch", str(batch), "--threads", str(n_threads), *common],
                                            folders["latency-aware"])}
            macs = plans["latency-aware"]["macs_after"]
            ratio = macs / plans["latency-aware"]["macs_before"]
            for base, flags in baselines.items():
                print(f"batch {batch}: {base} ({' '.join(flags) or 'default'}), largest plan at or under the same "
                      f"MACs (--target-macs {ratio:.4f}; timed, not recovered)", flush=True)
                folders[f"{base} <="] = tmp / f"{base.replace('/', '-r')}-below-b{batch}"
                below = prune(["--target-macs", f"{ratio:.4f}", *flags, *args.extra, "--no-recover"],
                              folders[f"{base} <="])
                plans[f"{base} <="] = below
                if below["macs_after"] != macs:
                    target = macs_target_at_least(macs, below["macs_before"], [*flags, *args.extra], tmp / "scratch")
                    print(f"batch {batch}: {base}, smallest plan at or over the same MACs (--target-macs {target:.4f})",
                          flush=True)
                    folders[f"{base} >="] = tmp / f"{base.replace('/', '-r')}-above-b{batch}"
                    plans[f"{base} >="] = prune(["--target-macs", f"{target:.4f}", *flags, *common],
                                                folders[f"{base} >="])
            timed = interleaved({"original": original, **{n: f / "model.onnx" for n, f in folders.items()}},
                                batch, n_threads)
            rows.append((f"{batch}/{n_threads}", plans, timed))
        print()
        print(f"{'b/thr':>5} {'method':<14}{'MACs':>7}{'target':>9}{'predicted':>10}{'measured':>9}{'interleaved':>12}"
              f"{'speedup':>8}{'vs target':>10}{'one-shot':>9}{'recovered':>10}{'imp kept':>9}")
        for batch, plans, timed in rows:
            lat = plans["latency-aware"]
            L = lat["latency"]
            print(f"{batch:>5} {'original':<14}{1.0:>7.2f}{'':>9}{'':>10}{L['original_ms']:>9.3f}"
                  f"{timed['original']:>12.3f}{1.0:>8.2f}{'':>10}{lat['top1_before']:>9.2%}{'':>10}{'':>9}")
            for name, s in plans.items():
                ms = timed[name]
                rec = s.get("top1_recovered")
                print(f"{batch:>5} {name:<14}{s['macs_after'] / s['macs_before']:>7.4f}"
                      f"{L['target_ms'] if s is lat else '':>9}{L['predicted_ms'] if s is lat else '':>10}"
                      f"{L['measured_ms'] if s is lat else '':>9}{ms:>12.3f}{timed['original'] / ms:>8.2f}"
                      f"{ms / (timed['original'] / args.speedup) - 1:>+10.1%}{s['top1_pruned']:>9.2%}"
                      f"{'-' if rec is None else format(rec, '.2%'):>10}"
                      f"{s['importance_kept']:>9.1%}")
                cut = [f"{k.split(':')[0]} {a}->{b}" for k, (a, b) in s["widths"].items() if k.endswith(":out")]
                print(f"      {name} widths: {', '.join(cut)}")
            for base in baselines:
                if f"{base} >=" in plans:
                    points = [(plans[f"{base} {side}"]["macs_after"], timed[f"{base} {side}"]) for side in ("<=", ">=")]
                    equal = at_macs(lat["macs_after"], *points)
                else:
                    equal = timed[f"{base} <="]
                print(f"      {base} at exactly the latency-aware MACs (interpolated): {equal:.3f} ms; "
                      f"latency-aware is {1 - timed['latency-aware'] / equal:+.1%} faster")
            err = L["prediction_error"]
            print(f"      latency model: prediction error on {err['configs']} held-out configurations "
                  f"mean {err['mean']:.1%}, max {err['max']:.1%}; table {L['table']['entries']} entries "
                  f"({L['table']['measured_now']} measured in this run); rounds {len(L['attempts'])}")


if __name__ == "__main__":
    main()
