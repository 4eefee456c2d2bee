"""The repair after the cut (``compress.recover.repair``) against BatchNorm re-estimation, on one cut of a real
trained model: the cut made once (cached in --cache), each variant from a copy.

    python benchmarks/real/repair_probe.py CKPT --arch ARCH [--arch-kwargs k=v] --task classify|detect \
        --calib DIR --eval DIR [--input-size N] --target macs=0.9 \
        --variants "recal;repair;repair+recal;recal+repair;repair:scope=consumers;repair:ridge=0.01"

A variant is steps joined by ``+`` (``recal``: BatchNorm re-estimation kept only where held-out agreement does not
fall; ``repair``: the least-squares repair, options ``scope``, ``ridge``, ``images``, ``steps`` (ridges tried per layer,
1: fixed), ``check`` (0: no per-layer refusal), ``judge`` (kl or agreement) after ``:``). Prints one JSON
line per variant (labelled metric, held-out agreement, seconds). Results: benchmarks/RESULTS.md, "Repair after the
cut".
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from compress.models.arch import parse_arch_kwargs  # noqa: E402
from compress.prune.importance import ImportanceConfig  # noqa: E402
from compress.prune.plan import PrunePolicy  # noqa: E402
from compress.prune.surgery import apply_cuts  # noqa: E402
from compress.recover import agreement  # noqa: E402
from compress.recover.batchnorm import recalibrate_if_better  # noqa: E402
from compress.recover.repair import repair_cut  # noqa: E402
from compress.run import stages  # noqa: E402
from compress.run.context import STDERR, Lines, PruneConfig, RunContext  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--arch", required=True)
    p.add_argument("--arch-kwargs", default="")
    p.add_argument("--task", default="auto")
    p.add_argument("--calib", required=True)
    p.add_argument("--eval", required=True)
    p.add_argument("--input-size", default=None)
    p.add_argument("--mean", default=None)
    p.add_argument("--std", default=None)
    p.add_argument("--target", default="macs=0.9", help="ratio=R or macs=M")
    p.add_argument("--variants", default="recal;repair")
    p.add_argument("--cache", default=None, help="file holding the cut (made and written on first use)")
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args()
    load = {"arch": args.arch, "arch_kwargs": parse_arch_kwargs(args.arch_kwargs)}
    if args.input_size:
        load["input_size"] = tuple(int(v) for v in args.input_size.split("x"))
    for key in ("mean", "std"):
        if getattr(args, key):
            load[key] = tuple(float(v) for v in getattr(args, key).split(","))
    kind, _, value = args.target.partition("=")
    policy = PrunePolicy(ratio=float(value)) if kind == "ratio" else PrunePolicy(target_macs=float(value))
    config = PruneConfig(checkpoint=args.checkpoint, calib=args.calib, policy=policy, load=load,
                         importance=ImportanceConfig(name="taylor-sq", progress=False),
                         recover=False, task=args.task, eval_dir=args.eval, progress=False)
    run = RunContext(config=config, say=Lines(info=STDERR.info, warn=STDERR.warn))
    for stage in (stages.load, stages.calibration, stages.task, stages.evaluation):
        stage(run)
    teacher, data = run.loaded.model, run.data
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.exists():
        cuts = torch.load(cache, weights_only=False)
    else:
        for stage in (stages.graph, stages.importance, stages.plan):
            stage(run)
        cuts = run.plan.cuts
        if cache is not None:
            torch.save(cuts, cache)
    cut = apply_cuts(copy.deepcopy(teacher), cuts)
    keep_out = {c.name: c.keep for c in cuts if c.role == "out"}
    before, one_shot = stages.metric(run, teacher), stages.metric(run, cut)
    ag0 = agreement(cut, teacher, data.holdout, task=run.task)[0]
    from compress.prune.profile import count_macs
    shape = tuple(run.loaded.spec.input_size)
    macs = count_macs(cut, shape) / count_macs(teacher, shape)
    print(json.dumps({"target": args.target, "macs": round(macs, 4), "before": before, "one_shot": one_shot,
                      "agreement_one_shot": round(ag0, 4), "counts": data.counts}), flush=True)
    for variant in filter(None, (v.strip() for v in args.variants.split(";"))):
        student, started, notes = copy.deepcopy(cut), time.perf_counter(), []
        for step in variant.split("+"):
            name, _, opts = step.partition(":")
            kw = dict(kv.split("=") for kv in filter(None, opts.split(",")))
            if name == "recal":
                out = recalibrate_if_better(student, teacher, data.distill, data.holdout,
                                            held_out=data.counts["holdout"], task=run.task)
                notes.append(out.get("bn_note"))
            elif name == "repair":
                r = repair_cut(student, teacher, data.distill, data.holdout, keep_out=keep_out,
                           task=run.task, scope=kw.get("scope", "after"),
                           ridge=float(kw.get("ridge", 1e-3)), max_images=int(kw.get("images", 256)),
                           ridge_steps=int(kw.get("steps", 4)), layer_check=kw.get("check", "1") == "1",
                           judge=kw.get("judge", "kl"),
                           batch_size=args.batch_size,
                           say=lambda m, t0=time.perf_counter(): print(f"{time.perf_counter() - t0:7.1f} s {m}",
                                                                       file=sys.stderr, flush=True))
                notes.append(f"repair: {r.agreement_before:.3f} -> {r.agreement_after:.3f}, {len(r.layers)} layers, "
                             f"{len(r.refused)} refused, KL {r.kl_before:.4f} -> {r.kl_after:.4f}, kept {r.kept}, "
                             f"{r.seconds:.0f} s")
            else:
                raise SystemExit(f"unknown step {name!r}")
        seconds = time.perf_counter() - started
        ag, kl = agreement(student, teacher, data.holdout, task=run.task)
        print(json.dumps({"variant": variant, "metric": stages.metric(run, student), "agreement": round(ag, 4),
                          "kl": round(kl, 4),
                          "seconds": round(seconds, 1), "notes": notes}), flush=True)


if __name__ == "__main__":
    main()
