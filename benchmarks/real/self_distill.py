"""Distillation recipes on a trained model without the cut: the original taught to a copy of itself (or to a cut
model a `compress prune` run saved), to see what the recipe alone does to what the weights know.

    python benchmarks/real/self_distill.py CKPT --arch ARCH [--arch-kwargs k=v] --calib DIR \
        [--student OUT_FOLDER] [--steps 6] [--eval-every 2] --recipe '{}' --recipe '{"lr": 1e-9}' \
        --recipe '{"augment": "none", "cutmix": 0}'

Each ``--recipe`` is a set of ``DistillConfig`` fields over the default recipe, run from a fresh copy with the
same seed on the calibration split ``compress prune`` makes (distillation / held-out images). Prints the T^2-scaled
KL of a train-mode student against the teacher on the first batch (0 when train and eval mode compute the same
function), then per recipe the held-out agreement and KL at every check. Results: benchmarks/RESULTS.md, "Why
distillation first undoes a trained net".
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from compress.calibrate import Preprocess  # noqa: E402
from compress.calibration import load_calibration  # noqa: E402
from compress.models.arch import parse_arch_kwargs  # noqa: E402
from compress.models.loading import load_model, load_saved  # noqa: E402
from compress.recover import DistillConfig, distill  # noqa: E402
from compress.tasks import default_task  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--arch", required=True)
    p.add_argument("--arch-kwargs", default="")
    p.add_argument("--calib", required=True)
    p.add_argument("--student", default=None, help="a compress prune output folder (default: a copy of the original)")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--eval-every", type=int, default=2)
    p.add_argument("--recipe", action="append", dest="recipes", help="JSON DistillConfig fields (repeat; default {})")
    args = p.parse_args()
    loaded = load_model(args.checkpoint, arch=args.arch, arch_kwargs=parse_arch_kwargs(args.arch_kwargs))
    teacher = loaded.model.eval()
    data = load_calibration(args.calib, Preprocess.from_dict(loaded.spec.preprocess), seed=0)
    start = load_saved(args.student, trust=True).model  # the user's own --student folder (ENet: a file --arch) if args.student else teacher
    batch = data.distill[:64]
    student = copy.deepcopy(start).train()
    with torch.no_grad():
        target = teacher(batch)
    gap = default_task().distill_loss(student(batch), target, 4.0).item()
    print(json.dumps({"counts": data.counts, "train_mode_loss_at_start": round(gap, 4)}), flush=True)
    for text in args.recipes or ["{}"]:
        config = DistillConfig(**{"steps": args.steps, "eval_every": args.eval_every, **json.loads(text)})
        result = distill(copy.deepcopy(start), teacher, data.distill, data.holdout, config, progress=False)
        print(json.dumps({"recipe": json.loads(text), "stopped": result.stopped,
                          "checks": [(h["step"], round(h["holdout_agreement"], 3), round(h["holdout_kl"], 3))
                                     for h in result.history]}), flush=True)


if __name__ == "__main__":
    main()
