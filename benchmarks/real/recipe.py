"""Recovery recipes side by side on one cut of a real trained model: the cut made once, each recipe from a copy.

    python benchmarks/real/recipe.py CKPT --arch ARCH [--arch-kwargs k=v] --task classify|detect \
        --calib DIR --eval DIR [--input-size N] --target macs=0.9 --steps 60 \
        --recipes "now:;start-recal:recal=1;low:recal=1,lr=0.001;adamw:recal=1,optimizer=adamw,lr=0.0003"

A recipe is ``name:key=value,...``: ``recal=1`` re-estimates the cut model's BatchNorm statistics first (kept only
where held-out agreement does not fall, as ``--no-recover`` does); every other key is a ``DistillConfig`` field
(``lr``, ``optimizer``, ``ema``, ``batch_size``, ``temperature``, ``cutmix``, ``augment``...). Each recipe gets the
same fixed step budget (no time cap) and the same seed. Prints one JSON line per recipe (held-out agreement at
every check, labelled metric of what the run returns) and a table. Results: benchmarks/RESULTS.md, "Real trained
models".
"""

from __future__ import annotations

import argparse
import copy
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
from compress.recover.batchnorm import recalibrate_if_better  # noqa: E402
from compress.recover.config import DistillConfig  # noqa: E402
from compress.recover.loop import distill  # noqa: E402
from compress.run import stages  # noqa: E402
from compress.run.context import STDERR, Lines, PruneConfig, RunContext  # noqa: E402

FIELDS = {f.name: f.type for f in dataclasses.fields(DistillConfig)}


def parse_recipes(text: str) -> list[tuple[str, bool, dict]]:
    out = []
    for item in filter(None, (s.strip() for s in text.split(";"))):
        name, _, rest = item.partition(":")
        recal, kwargs = False, {}
        for kv in filter(None, rest.split(",")):
            key, _, value = kv.partition("=")
            if key == "recal":
                recal = value not in ("0", "false", "")
            elif key in FIELDS:
                kwargs[key] = _value(value)
            else:
                raise SystemExit(f"unknown recipe key {key!r} in {item!r}")
        out.append((name, recal, kwargs))
    return out


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--arch", required=True)
    p.add_argument("--arch-kwargs", default="")
    p.add_argument("--task", default="auto")
    p.add_argument("--calib", required=True)
    p.add_argument("--eval", required=True)
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--target", default="macs=0.9", help="ratio=R or macs=M")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--recipes", default="now:")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    load = {"arch": args.arch, "arch_kwargs": parse_arch_kwargs(args.arch_kwargs)}
    if args.input_size:
        load["input_size"] = args.input_size
    kind, _, value = args.target.partition("=")
    policy = PrunePolicy(ratio=float(value)) if kind == "ratio" else PrunePolicy(target_macs=float(value))
    config = PruneConfig(checkpoint=args.checkpoint, calib=args.calib, policy=policy, load=load,
                         importance=ImportanceConfig(name="taylor-sq", seed=args.seed, progress=False),
                         recover=False, task=args.task, eval_dir=args.eval, seed=args.seed, progress=False)
    run = RunContext(config=config, say=Lines(info=STDERR.info, warn=STDERR.warn))
    for stage in (stages.load, stages.calibration, stages.task, stages.evaluation, stages.graph, stages.importance,
                  stages.plan, stages.cut, stages.measure_pruned):
        stage(run)
    teacher, cut, data = run.loaded.model, run.student, run.data
    before, one_shot = stages.metric(run, teacher), stages.metric(run, cut)
    macs = run.summary.macs_after / run.summary.macs_before
    print(json.dumps({"target": args.target, "macs": round(macs, 4), "before": before, "one_shot": one_shot,
                      "counts": data.counts}), flush=True)
    rows = []
    for name, recal, kwargs in parse_recipes(args.recipes):
        started = time.perf_counter()
        student = copy.deepcopy(cut)
        start = None
        if recal:
            out = recalibrate_if_better(student, teacher, data.distill, data.holdout, held_out=data.counts["holdout"],
                                        task=run.task)
            start = stages.metric(run, student) if out.get("bn_recalibrated") else one_shot
        dc = DistillConfig(steps=args.steps, seed=args.seed, eval_every=args.eval_every, **kwargs)
        result = distill(student, teacher, data.distill, data.holdout, dc, progress=False, task=run.task)
        row = {"recipe": name, "recal": recal, **kwargs, "start": start,
               "checks": [(h["step"], round(h["holdout_agreement"], 4)) for h in result.history],
               "best_step": result.best_step, "steps": result.steps, "stopped": result.stopped, "agreement_after": round(result.agreement_after, 4),
               "metric": stages.metric(run, result.student), "seconds": round(time.perf_counter() - started, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{args.target} ({macs:.2f}x MACs): original {100 * before:.2f} %, one-shot {100 * one_shot:.2f} %, "
          f"{args.steps} steps each\n")
    print("| recipe | start | held-out agreement, first -> lowest -> last | kept step | labelled |")
    print("|---|---:|---|---:|---:|")
    for r in rows:
        ag = [a for _, a in r["checks"]]
        start = "-" if r["start"] is None else f"{100 * r['start']:.2f} %"
        print(f"| {r['recipe']} | {start} | {100 * ag[0]:.1f} -> {100 * min(ag):.1f} -> {100 * ag[-1]:.1f} % | "
              f"{r['best_step']} | {100 * r['metric']:.2f} % |")


if __name__ == "__main__":
    main()
