"""One-shot cuts of a real trained model at several targets and criteria, scored once per criterion.

    python benchmarks/real/oneshot_grid.py CKPT --arch ARCH [--arch-kwargs k=v] --task classify|detect \
        --calib DIR --eval DIR [--input-size N] --targets ratio=0.1,macs=0.8 --criteria taylor-sq,l1 [--seed 0]

For each criterion the model, calibration split, graph and importance are computed once (the pipeline's own
stages, ``compress.run.stages``); each target is then planned, cut (proved), measured on ``--eval`` one-shot
and after BatchNorm re-estimation on the calibration images (what ``compress prune --no-recover`` writes).
No recovery: this separates what the cut itself costs from what distillation gives back. Prints one JSON
line per cut and a table. Results: benchmarks/RESULTS.md, "Real trained models".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from compress.models.arch import parse_arch_kwargs  # noqa: E402
from compress.prune.importance import ImportanceConfig  # noqa: E402
from compress.prune.plan import PrunePolicy  # noqa: E402
from compress.run import stages  # noqa: E402
from compress.run.context import STDERR, Lines, PruneConfig, RunContext  # noqa: E402


def parse_targets(text: str) -> list[PrunePolicy]:
    """``ratio=0.1,macs=0.8`` -> the policies ``--ratio 0.1`` and ``--target-macs 0.8`` make."""
    out = []
    for item in text.split(","):
        kind, _, value = item.partition("=")
        out.append(PrunePolicy(ratio=float(value)) if kind == "ratio" else PrunePolicy(target_macs=float(value)))
    return out


def label(policy: PrunePolicy) -> str:
    return f"--ratio {policy.ratio:g}" if policy.ratio is not None else f"--target-macs {policy.target_macs:g}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--arch", required=True)
    p.add_argument("--arch-kwargs", default="", help="k=v,k=v")
    p.add_argument("--task", default="auto")
    p.add_argument("--calib", required=True)
    p.add_argument("--eval", required=True)
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--targets", default="ratio=0.1,macs=0.8")
    p.add_argument("--criteria", default="taylor-sq")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    load = {"arch": args.arch, "arch_kwargs": parse_arch_kwargs(args.arch_kwargs)}
    if args.input_size:
        load["input_size"] = args.input_size
    say = Lines(info=lambda m: None, warn=lambda m: None) if args.quiet else STDERR
    rows = []
    for criterion in args.criteria.split(","):
        config = PruneConfig(checkpoint=args.checkpoint, calib=args.calib, policy=PrunePolicy(ratio=0.1), load=load,
                             importance=ImportanceConfig(name=criterion, seed=args.seed, progress=False),
                             recover=False, task=args.task, eval_dir=args.eval, seed=args.seed, progress=False)
        run = RunContext(config=config, say=say)
        for stage in (stages.load, stages.calibration, stages.task, stages.evaluation, stages.graph, stages.importance):
            stage(run)
        before = stages.metric(run, run.loaded.model)
        for policy in parse_targets(args.targets):
            started = time.perf_counter()
            run.config = dataclasses.replace(config, policy=policy)
            run.student = run.summary = None
            for stage in (stages.plan, stages.cut, stages.measure_pruned):
                stage(run)
            pruned = stages.metric(run, run.student)
            stages.recalibrate(run)
            rec = run.summary.recalibration
            recal = stages.metric(run, run.student) if rec is not None and rec.bn_recalibrated else None
            row = {"criterion": criterion, "target": label(policy), "macs": run.summary.macs_after / run.summary.macs_before,
                   "metric": run.task.metric, "before": before, "one_shot": pruned, "recalibrated": recal,
                   "agreement_pruned": None if rec is None else rec.agreement_pruned,
                   "agreement_recalibrated": None if rec is None else rec.agreement_recalibrated,
                   "seconds": round(time.perf_counter() - started, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n| criterion | target | MACs | {rows[0]['metric']} original | one-shot | BatchNorm re-estimated |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        recal = "-" if r["recalibrated"] is None else f"{100 * r['recalibrated']:.1f} %"
        print(f"| {r['criterion']} | `{r['target']}` | {r['macs']:.2f}x | {100 * r['before']:.1f} % | "
              f"{100 * r['one_shot']:.1f} % | {recal} |")


if __name__ == "__main__":
    main()
