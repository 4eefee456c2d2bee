"""A small ViT trained here, pruned to 0.6x MACs and recovered with the default recovery.

Nothing is downloaded. Data: the embedded digits (scikit-learn's 8x8 digits rendered as 32x32 RGB,
``compress.demo.assets``): the unlabeled ``calib/`` folder is what the tool sees, ``eval/`` (held out,
labelled) measures top-1. DigitViT (``compress.archs.digitvit``: torchvision VisionTransformer,
patch 4, width 64, 4 heads, MLP 128, 4 layers) is trained on the calib split with its labels and
fresh renderings every epoch (as the demo trains DigitNet), then ``compress.prune`` runs with
``--target-macs 0.6`` and the default recovery (self-distillation on the unlabeled calib images)
for three structure sets:

- heads: attention heads and head widths only (``--keep '*mlp*'``)
- mlp: MLP hidden widths only (``--keep '*self_attention*'``)
- both: everything the tool finds prunable

It prints, per set, MACs after/before, one-shot top-1 (no recovery) and recovered top-1 on eval/.

    .venv/bin/python benchmarks/vit_recovery.py [--work /tmp/vit] [--train-steps 2000] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

ARCH = "compress.archs.digitvit:digitvit"
SETS = {"both": (), "heads": ("*mlp*",), "mlp": ("*self_attention*",)}


def calib_split(seed: int):
    """The digits and labels of the demo's calib split (the same split ``make_demo_assets`` writes)."""
    from compress.demo.assets import digits_split

    images, labels, _, _, calib_idx = digits_split(seed)
    return images[calib_idx], labels[calib_idx]


def train(images: np.ndarray, labels: np.ndarray, steps: int, seed: int, batch: int = 64):
    from compress.archs.digitvit import digitvit
    from compress.demo.assets import fit_digits

    return fit_digits(digitvit, images, labels, steps=steps, seed=seed, batch=batch, lr=2e-3, weight_decay=0.05,
                      pct_start=0.1, label_smoothing=0.1, clip=1.0, log_every=50)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="/tmp/digitvit")
    parser.add_argument("--train-steps", type=int, default=2000)
    parser.add_argument("--target-macs", type=float, default=0.6)
    parser.add_argument("--only", nargs="*", choices=list(SETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recover-epochs", type=float, default=None,
                        help="explicit distillation epochs (no wall-time cap); default: the tool's automatic budget")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's; 1 is steadier "
                        "on a shared machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from compress import api
    from compress.demo.assets import evaluate_folder, make_demo_assets

    work = Path(args.work)
    assets = make_demo_assets(work / "digits", seed=args.seed, train_seconds=1)  # the folders (DigitNet unused)
    ckpt = work / f"digitvit-{args.train_steps}.pt"
    if not ckpt.exists():
        model, seconds = train(*calib_split(args.seed), steps=args.train_steps, seed=args.seed)
        torch.save(model.state_dict(), ckpt)
        print(f"trained DigitViT: {args.train_steps} steps in {seconds:.0f} s", flush=True)
    from compress.archs.digitvit import digitvit

    model = digitvit()
    model.load_state_dict(torch.load(ckpt))
    top1 = evaluate_folder(model.eval(), assets.eval_dir)
    print(f"DigitViT top-1 on {assets.eval_dir.name}/: {top1:.4f}", flush=True)
    print("| structures | MACs after/before | recovery steps run/planned | top-1 before | one-shot | recovered | "
          "recovered - before | time |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    suffix = f"-e{args.recover_epochs:g}" if args.recover_epochs else ""
    for name in args.only or SETS:
        start = time.perf_counter()
        result = api.prune(str(ckpt), str(assets.calib_dir), target_macs=args.target_macs, arch=ARCH,
                           keep=SETS[name], eval_dir=str(assets.eval_dir),
                           out=str(work / f"out-{name}{suffix}"),
                           overwrite=True, progress=False, quiet=True, seed=args.seed,
                           recover_epochs=args.recover_epochs)
        s = result.summary.to_json()  # the flat summary.json keys
        ratio = s["macs_after"] / s["macs_before"]
        steps = f"{s.get('recover_steps')}/{s.get('recover_planned_steps')}"
        print(f"| {name} | {ratio:.3f}x | {steps} | {s['top1_before']:.4f} | {s['top1_pruned']:.4f} | "
              f"{s['top1_recovered']:.4f} | {100 * (s['top1_recovered'] - s['top1_before']):+.2f} pt | "
              f"{time.perf_counter() - start:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
