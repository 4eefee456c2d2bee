"""The free alternative alone: a trained model run at the input sizes whose MACs are closest to fractions of its
own (``compress.run.resolution``, what every ``compress prune`` now measures beside its cut), without pruning.

    python benchmarks/real/smaller_input.py CKPT --arch ARCH [--arch-kwargs k=v] [--input-size HxW] \
        [--mean 0,0,0 --std 1,1,1] --task detect --calib DIR --eval DIR --targets 0.9,0.7,0.5

Prints one JSON line per target: the size, its MACs, the label-free figure against the original at full size on
the held-out calibration images (agreement; a detector's mAP@0.5 against the original's own boxes) and the
labelled metric on ``--eval``. Results: benchmarks/RESULTS.md, "Against the free alternative".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from compress.calibration import load_calibration  # noqa: E402
from compress.models.arch import parse_arch_kwargs  # noqa: E402
from compress.models.loading import load_model  # noqa: E402
from compress.prune.profile import count_macs  # noqa: E402
from compress.run import resolution  # noqa: E402
from compress.tasks import task_of  # noqa: E402
from compress.tasks.evaluate import labelled_metric  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--arch", required=True)
    p.add_argument("--arch-kwargs", default="")
    p.add_argument("--input-size", default=None)
    p.add_argument("--mean", default=None)
    p.add_argument("--std", default=None)
    p.add_argument("--task", default="auto")
    p.add_argument("--calib", required=True)
    p.add_argument("--eval", default=None)
    p.add_argument("--targets", default="0.9,0.7,0.5")
    args = p.parse_args()
    triple = lambda s: tuple(float(v) for v in s.split(",")) if s else None  # noqa: E731
    loaded = load_model(args.checkpoint, arch=args.arch, arch_kwargs=parse_arch_kwargs(args.arch_kwargs),
                        input_size=args.input_size, mean=triple(args.mean), std=triple(args.std))
    model, pre = loaded.model.eval(), loaded.preprocess()
    data = load_calibration(args.calib, pre, seed=0)
    task = task_of(model, data.example(2), args.task)
    evaluation = task.labelled(args.eval, pre) if args.eval else None
    shape = tuple(loaded.spec.input_size)
    full = count_macs(model, shape)
    row = {"input_size": list(shape), "macs": full, "held_out": data.counts["holdout"]}
    if evaluation is not None:
        row[task.metric] = round(labelled_metric(task, model, evaluation), 5)
    print(json.dumps({"original": row}), flush=True)
    for target in (float(t) for t in args.targets.split(",")):
        started = time.perf_counter()
        got = resolution.figures(model, shape, int(target * full), task, data.holdout, evaluation=evaluation,
                                 preprocess=pre)
        print(json.dumps({"target_macs": target, **got, "seconds": round(time.perf_counter() - started, 1)}), flush=True)


if __name__ == "__main__":
    main()
