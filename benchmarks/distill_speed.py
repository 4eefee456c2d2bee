"""Distillation steps per second on a CPU: fresh teacher passes against a pool of cached teacher views.

A ResNet-56-sized teacher (``cifar_resnet56``, random weights: speed does not depend on them) and a
student with half of every block's inner channels (what ``--ratio 0.5`` cuts in a CIFAR ResNet, whose
residual stream is protected), on random 32x32 images, through ``compress.recover.distill`` with the
default recipe. The modes run INTERLEAVED, rep by rep, so that load from other jobs hits both alike.

For each mode it prints the training loop's steps/s (the held-out checks left out: one at the end, the
same in both), the seconds per batch spent building the view pool (K epochs of teacher passes, once
per run), and the steps/s over whole runs of E epochs with that build included (a K-view pool costs K/E
teacher passes per step, whatever the number of images), for E = --epochs (default 120, the automatic
budget for 1,800 images) and E = 30 (about what a ResNet-56 reaches in the 9.5-minute cap).

    .venv/bin/python benchmarks/distill_speed.py [--views 4,8] [--steps 40] [--reps 3] [--threads 1]

Results: benchmarks/RESULTS.md, section "Distillation step speed".
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from compress.archs import cifar_resnet
from compress.recover import DistillConfig, distill
from tune_distill import prune_half_inner


def one_run(student, teacher, train, hold, views: int, steps: int) -> tuple[float, float]:
    """(loop seconds per step, pool build seconds) of one fresh run of ``steps`` steps."""
    config = DistillConfig(steps=steps, eval_every=steps, teacher_views=views)
    res = distill(copy.deepcopy(student), teacher, train, hold, config, progress=False)
    if views and res.teacher_views != views:
        raise SystemExit(f"the pool was not used: {res.views_note}")
    loop = res.history[-1]["seconds"] - res.views_seconds
    return loop / res.steps, res.views_seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--views", default="8", help="pool sizes (views per image) to compare with fresh passes")
    ap.add_argument("--images", type=int, default=256, help="training images (the pool holds views x images)")
    ap.add_argument("--steps", type=int, default=40, help="training steps per run")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--epochs", type=float, default=120.0, help="run length the build cost is spread over")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    teacher = cifar_resnet.resnet56().eval()
    student = prune_half_inner(teacher)
    train, hold = torch.randn(args.images, 3, 32, 32), torch.randn(64, 3, 32, 32)
    modes = [0] + [int(v) for v in args.views.split(",")]
    per_step: dict[int, list[float]] = {m: [] for m in modes}
    build: dict[int, list[float]] = {m: [] for m in modes}
    one_run(student, teacher, train, hold, 0, 3)  # warm-up: first-call allocations and kernel choices
    for rep in range(args.reps):
        for m in modes:
            s, b = one_run(student, teacher, train, hold, m, args.steps)
            per_step[m].append(s)
            build[m].append(b)
            print(f"rep {rep} views {m:>3}: {1 / s:.3f} steps/s in the loop, pool built in {b:.1f} s", flush=True)
    spe = args.images // DistillConfig().batch_size
    base = statistics.median(per_step[0])
    print(f"\n{torch.get_num_threads()} threads; median of {args.reps} interleaved reps of {args.steps} steps")
    print(f"{'views':>5}{'loop steps/s':>14}{'x':>7}{'build s/batch':>15}" + "".join(
        f"{f'{e:g} ep steps/s':>16}{'x':>7}" for e in (args.epochs, 30.0)))
    for m in modes:
        s = statistics.median(per_step[m])
        per_batch = statistics.median(build[m]) / (m * spe) if m else 0.0
        row = f"{m:>5}{1 / s:>14.3f}{base / s:>7.2f}{per_batch:>15.3f}"
        for e in (args.epochs, 30.0):
            step = s + per_batch * m / e  # the build spread over the run's E * spe steps
            row += f"{1 / step:>16.3f}{base / step:>7.2f}"
        print(row)


if __name__ == "__main__":
    main()
