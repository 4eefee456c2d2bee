"""Importance criteria judged where the product is judged: after recovery, on the real CIFAR ResNets.

Runs ``compress prune MODEL --ratio 0.5 --importance C --seed S`` for every model x seed x criterion
(criteria interleaved inside each seed, so a drift in machine load hits them alike), each a fresh
process, and prints one-shot top-1 (right after the cut, before any BatchNorm re-estimation or
recovery) and recovered top-1 on ../shared/data/cifar10/eval, then per model the mean over seeds and
each criterion's paired difference with the others: mean over seeds of (A - B), and its standard
error sd(A - B) / sqrt(seeds) - paired by seed, so what a seed does to both runs cancels.

The recovery budget is the product's default (automatic epochs, 9.5-minute cap) unless
``--epochs`` or ``--steps`` is given; a short fixed budget is the cheap proxy.

    .venv/bin/python benchmarks/criterion_recovery.py [--models resnet20,resnet32] [--seeds 0,1,2]
        [--criteria taylor-l1,taylor-sq,l1] [--epochs 10 | --steps 300] [--log runs.jsonl] [--jobs 2]
        [-- extra prune options]

``--log`` appends every finished run as a JSON line and skips runs already there, so an interrupted
benchmark resumes. Results: benchmarks/RESULTS.md, section "Criterion after recovery".
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CALIB, EVAL, MODELS, ROOT, require_shared


def run(model: str, criterion: str, seed: int, budget: list[str], out: Path, extra: list[str],
        threads: int | None = None, schedule: str = "oneshot") -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads)) if threads else None
    cmd = [sys.executable, "-m", "compress", "prune", str(MODELS[model]), "--arch", f"cifar_{model}",
           "--calib", str(CALIB), "--eval", str(EVAL), "--ratio", "0.5", "--importance", criterion,
           "--seed", str(seed), "--schedule", schedule, *budget, "-o", str(out), "--overwrite", "--no-progress", "--json", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        sys.exit(f"{model} {criterion} seed {seed} failed:\n{proc.stderr[-2000:]}")
    s = json.loads(proc.stdout)
    return {"model": model, "criterion": criterion, "schedule": schedule, "seed": seed, "budget": " ".join(budget) or "default",
            "unpruned": s["top1_before"], "one_shot": s["top1_pruned"], "recovered": s["top1_recovered"],
            "epochs": s.get("recover_epochs"), "recover_seconds": s.get("recover_seconds"),
            "macs_ratio": s["macs_after"] / s["macs_before"], "wall_seconds": round(time.perf_counter() - start, 1),
            "stages": [(g["step"], g["macs"], g.get("agreement")) for g in s.get("recover_stages") or []],
            "agreement": s.get("agreement_recovered"), "cpu_load": round(os.getloadavg()[0], 1)}


def arm(r: dict) -> str:
    """A row's arm: its criterion, with the schedule when it is not one-shot (logs before the axis were one-shot)."""
    schedule = r.get("schedule", "oneshot")
    return r["criterion"] if schedule == "oneshot" else f"{r['criterion']}/{schedule}"


def paired(rows: list[dict], a: str, b: str, key: str) -> tuple[float, float, int]:
    """(mean of A - B over the seeds both ran, its standard error, seeds), in points."""
    by = {(arm(r), r["seed"]): r[key] for r in rows}
    diffs = [100 * (by[(a, s)] - by[(b, s)]) for s in sorted({r["seed"] for r in rows})
             if (a, s) in by and (b, s) in by]
    if not diffs:
        return math.nan, math.nan, 0
    mean = sum(diffs) / len(diffs)
    if len(diffs) < 2:
        return mean, math.nan, 1
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    return mean, sd / math.sqrt(len(diffs)), len(diffs)


def summarise(rows: list[dict], model: str, criteria: list[str]) -> None:
    mine = [r for r in rows if r["model"] == model]
    if not mine:
        return
    print(f"\n{model}: mean over seeds (unpruned {100 * mine[0]['unpruned']:.2f} %)")
    print(f"{'arm':<20}{'seeds':>6}{'one-shot':>10}{'recovered':>11}{'gap':>7}{'epochs':>8}")
    for c in criteria:
        rs = [r for r in mine if arm(r) == c]
        if rs:
            one = sum(r["one_shot"] for r in rs) / len(rs)
            rec = sum(r["recovered"] for r in rs) / len(rs)
            ep = sum(r["epochs"] or 0 for r in rs) / len(rs)
            print(f"{c:<20}{len(rs):>6}{100 * one:>9.2f}%{100 * rec:>10.2f}%{100 * (mine[0]['unpruned'] - rec):>7.2f}"
                  f"{ep:>8.1f}")
    print("paired differences, points (mean +- se over seeds):")
    for a, b in itertools.combinations(criteria, 2):
        (m1, s1, n), (m2, s2, _) = paired(mine, a, b, "one_shot"), paired(mine, a, b, "recovered")
        if n:
            print(f"  {a} - {b}: one-shot {m1:+.2f} +- {s1:.2f}, recovered {m2:+.2f} +- {s2:.2f} ({n} seeds)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="resnet20,resnet32")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--criteria", default="taylor-l1,taylor-sq,l1")
    parser.add_argument("--schedules", default="oneshot", help="oneshot,gradual: the schedule axis (issue 37)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=float, default=None, help="fixed recovery epochs (default: the product's)")
    budget.add_argument("--steps", type=int, default=None, help="fixed recovery steps")
    parser.add_argument("--log", default=None, help="JSON lines of finished runs: appended to, and resumed from")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs side by side, each on cores/jobs threads; use with a fixed budget (--epochs/--steps): "
                             "under the default wall-time cap, side-by-side runs reach fewer epochs")
    parser.add_argument("--keep", default=None, help="keep each run's output folder under this folder "
                        "(out-MODEL-CRITERION-SEED), e.g. to bench one afterwards")
    parser.add_argument("extra", nargs="*", help="extra compress prune options, after --")
    args = parser.parse_args()
    require_shared()
    criteria = args.criteria.split(",")
    budget = (["--recover-epochs", f"{args.epochs:g}"] if args.epochs is not None
              else ["--recover-steps", str(args.steps)] if args.steps is not None else [])
    rows = []
    if args.log and Path(args.log).exists():
        rows = [json.loads(line) for line in Path(args.log).read_text().splitlines() if line.strip()]
        rows = [r for r in rows if r["budget"] == (" ".join(budget) or "default")]
    print(f"{'model':<10}{'arm':<20}{'seed':>5}{'one-shot':>10}{'recovered':>11}{'epochs':>8}{'recover s':>10}")
    schedules = args.schedules.split(",")
    todo = [(m, c, s, g) for m in args.models.split(",") for s in (int(x) for x in args.seeds.split(","))
            for c in criteria for g in schedules]
    done = {(r["model"], r["criterion"], r["seed"], r.get("schedule", "oneshot")) for r in rows}
    arms = [c if g == "oneshot" else f"{c}/{g}" for c in criteria for g in schedules]
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None

    def show(r: dict) -> None:
        print(f"{r['model']:<10}{arm(r):<20}{r['seed']:>5}{100 * r['one_shot']:>9.2f}%"
              f"{100 * r['recovered']:>10.2f}%{r['epochs'] or 0:>8.1f}{r['recover_seconds'] or 0:>10.0f}", flush=True)

    for r in rows:
        if (r["model"], r["criterion"], r["seed"], r.get("schedule", "oneshot")) in set(todo):
            show(r)
    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        where = Path(args.keep) if args.keep else Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        futures = [pool.submit(run, m, c, s, budget, where / f"out-{m}-{c}-{g}-{s}", args.extra, threads, g)
                   for (m, c, s, g) in todo if (m, c, s, g) not in done]
        for future in concurrent.futures.as_completed(futures):
            r = future.result()
            rows.append(r)
            if args.log:
                with open(args.log, "a") as handle:
                    handle.write(json.dumps(r) + "\n")
            show(r)
    for model in args.models.split(","):
        summarise(rows, model, arms)


if __name__ == "__main__":
    main()
