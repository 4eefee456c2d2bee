"""Tune the self-distillation defaults on a half-pruned CIFAR ResNet (rough benchmark script).

The student is made here, for tuning only: in every BasicBlock keep the half of ``conv1``'s output
channels with the largest L1 filter norm (half of each block's inner channels). 10 % of the 2,000
unlabeled calibration images are held out for agreement; accuracy is measured on the labelled
eval split (never used for training).

    .venv/bin/python benchmarks/tune_distill.py --arch resnet20 --epochs 30 --cutmix 0 --lr 0.05
    .venv/bin/python benchmarks/tune_distill.py --arch resnet20            # the defaults

Prints one JSON line per run (and appends it to --out when given). Use --threads 1 when other
jobs share the CPU: with 2 OpenMP threads on a contended 2-core machine a step was 4-10x slower.

Results, run by run with seeds and machines: benchmarks/RESULTS.md, section
"Distillation tuning".
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from compress.archs import cifar_resnet
from compress.recover import DistillConfig, distill, top1_accuracy

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def load_images(paths: list[Path]) -> torch.Tensor:
    arr = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) for p in paths])
    x = torch.from_numpy(arr).permute(0, 3, 1, 2) / 255.0
    return ((x - MEAN) / STD).contiguous()


def load_eval() -> tuple[torch.Tensor, torch.Tensor]:
    root = SHARED / "data/cifar10/eval"
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    paths, labels = [], []
    for i, c in enumerate(classes):
        for p in sorted((root / c).glob("*.jpg")):
            paths.append(p)
            labels.append(i)
    return load_images(paths), torch.tensor(labels)


def load_model(arch: str) -> nn.Module:
    ckpt = torch.load(SHARED / f"models/{arch}-cifar10.th", map_location="cpu", weights_only=False)
    sd = {k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()}
    model = getattr(cifar_resnet, arch)()
    model.load_state_dict(sd)
    return model.eval()


@torch.no_grad()
def prune_half_inner(model: nn.Module) -> nn.Module:
    """Copy of ``model`` with half of every BasicBlock's inner channels (largest L1 kept)."""
    student = __import__("copy").deepcopy(model)
    for m in student.modules():
        if isinstance(m, cifar_resnet.BasicBlock):
            w = m.conv1.weight
            keep = w.abs().sum((1, 2, 3)).argsort(descending=True)[: w.shape[0] // 2].sort().values
            c1 = nn.Conv2d(w.shape[1], len(keep), 3, stride=m.conv1.stride, padding=1, bias=False)
            c1.weight.copy_(w[keep])
            bn = nn.BatchNorm2d(len(keep))
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(bn, name).copy_(getattr(m.bn1, name)[keep])
            c2 = nn.Conv2d(len(keep), m.conv2.out_channels, 3, padding=1, bias=False)
            c2.weight.copy_(m.conv2.weight[:, keep])
            m.conv1, m.bn1, m.conv2 = c1, bn, c2
    return student


def macs(model: nn.Module) -> int:
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            total += out.numel() // out.shape[0] * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Linear):
            total += mod.in_features * mod.out_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model(torch.zeros(1, 3, 32, 32))
    for h in hs:
        h.remove()
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="resnet20")
    ap.add_argument("--epochs", type=float)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--cutmix", type=float)
    ap.add_argument("--temperature", type=float)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--optimizer")
    ap.add_argument("--weight-decay", type=float)
    ap.add_argument("--pad-mode")
    ap.add_argument("--augment")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--eval-every", type=int)
    ap.add_argument("--teacher-views", type=int, help="views per image in the pool of teacher outputs (0: off)")
    ap.add_argument("--threads", type=int, help="torch threads (1 is far faster on a contended CPU)")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {k: v for k, v in vars(args).items() if v is not None and k not in ("arch", "out", "threads")}
    config = DistillConfig(**overrides)

    teacher = load_model(args.arch)
    student = prune_half_inner(teacher)
    calib = load_images(sorted((SHARED / "data/cifar10/calib").glob("*.jpg")))
    n_hold = len(calib) // 10
    perm = torch.randperm(len(calib), generator=torch.Generator().manual_seed(1234))
    holdout, train = calib[perm[:n_hold]], calib[perm[n_hold:]]
    ev_x, ev_y = load_eval()

    acc_teacher = top1_accuracy(teacher, ev_x, ev_y)
    acc_oneshot = top1_accuracy(student, ev_x, ev_y)
    t0, c0 = time.perf_counter(), time.process_time()
    res = distill(student, teacher, train, holdout, config, progress=sys.stderr.isatty())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    acc = top1_accuracy(res.student, ev_x, ev_y)
    row = {
        "arch": args.arch, "overrides": overrides, "steps": res.steps, "epochs": round(res.epochs, 2),
        "macs_ratio": round(macs(res.student) / macs(teacher), 4),
        "teacher_top1": acc_teacher, "oneshot_top1": acc_oneshot, "recovered_top1": acc,
        "agreement_before": res.agreement_before, "agreement_after": res.agreement_after,
        "kl_before": round(res.kl_before, 4), "kl_after": round(res.kl_after, 4), "best_step": res.best_step,
        "seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "stopped": res.stopped, "teacher_views": res.teacher_views, "views_note": res.views_note,
        "threads": torch.get_num_threads(),
        "holdout_curve": [(h["step"], round(h["holdout_agreement"], 4)) for h in res.history],
    }
    line = json.dumps(row)
    print(line, flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
