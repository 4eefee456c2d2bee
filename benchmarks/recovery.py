"""Recovery by self-distillation on the real CIFAR ResNets, with the product's default settings.

Importance and distillation use ../shared/data/cifar10/calib only (2,000 unlabeled images);
accuracy is measured on eval/ only. For each model and target (--ratio 0.5, --target-macs 0.5)
prints unpruned, one-shot and recovered top-1, MACs, recovery wall time and peak RSS.
Each run is a fresh process (`compress prune … --json`), so its peak RSS is its own.

    .venv/bin/python benchmarks/recovery.py [--models resnet20,resnet32] [--targets ratio,macs] [-- --seed 1]

On a 2-core AMD EPYC Zen 3 (AVX2: no native bf16, so recovery runs in float32; no VNNI), seed 0, each run
alone, after OpenMP kept its default wait policy (04e97e1; before it, the CLI's PASSIVE made a ResNet-32 step
~2x slower there and ResNet-32 --ratio 0.5 reached 38.9 epochs, 80.35 %, gap 3.45):

    model     target          recovered   gap    recover s   epochs       peak RSS   agr train / held-out
    resnet32  --ratio 0.5     81.70       2.10   489         58.2 (cap)   1268 MiB   92.3 / 86.5 %
    resnet32  --target-macs   81.15       2.65   480         54.6 (cap)   1350 MiB   93.3 / 87.5 %
    resnet20  --ratio 0.5     80.05       1.30   477         85.1 (cap)   1222 MiB   91.5 / 87.5 %
    resnet20  --target-macs   80.10       1.25   479         93.1 (cap)   1247 MiB   91.6 / 85.5 %

Seed 1 (`-- --seed 1`), resnet32 --ratio 0.5: 80.90 (gap 2.90), 489 s, 59.4 epochs, agreement 93.0 / 87.0 %.

The last two columns compare the original and the recovered model image by image on eval/: `gap se` is the
standard error of the gap (paired: images both get right or both get wrong add nothing), `agr eval` how often they
predict the same class. A recovered model disagrees with the original on ~15 % of the 2,000 images, so a single
run's gap carries ~0.8 points of standard error from the choice of eval images alone; two recovered ResNet-32s
(different settings, seed 0) disagree with each other on 8-13 % of them. Rerun at seed 0 on the same machine
(`recovery.py --models resnet32,resnet20`):

    model     target          recovered   gap    gap se   recover s   epochs       peak RSS   agr train / held-out / eval
    resnet32  --ratio 0.5     81.20       2.60   0.76     476         53.5 (cap)   1131 MiB   92.5 / 88.0 / 85.8 %
    resnet32  --target-macs   81.35       2.45   0.75     472         59.7 (cap)   1129 MiB   93.1 / 87.5 / 85.5 %
    resnet20  --ratio 0.5     80.65       0.70   0.81     482         102.5 (cap)  1070 MiB   91.7 / 87.5 / 84.2 %
    resnet20  --target-macs   80.35       1.00   0.82     477         85.0 (cap)   1085 MiB   91.8 / 85.0 / 83.9 %

With the 9.5-minute cap (51f743b), same machine, seed 0 (`recovery.py --models resnet32`):

    model     target          recovered   gap    gap se   recover s   epochs       peak RSS   agr train / held-out / eval
    resnet32  --ratio 0.5     81.40       2.40   0.76     574         67.9 (cap)   1089 MiB   93.3 / 87.0 / 85.8 %
    resnet32  --target-macs   79.70       4.10   0.83     575         66.8 (cap)   1124 MiB   89.4 / 87.5 / 82.8 %

Scratch runs of --ratio 0.5 with the 9.5-minute cap: 82.40 (seed 0, 65.8 epochs) and 81.85 % (seed 1, 63.3). Over
three --ratio 0.5 runs each the gap averaged 1.92 with 9.5 minutes and 2.53 with 8; the one --target-macs run with
9.5 minutes lost 4.10 (2.45 with 8), its agreement on training images (89.4 %) and its KL there (0.35 against
0.13-0.15) well below every other run's: the weights kept were from well before the end, picked by the highest raw
agreement on 200 held-out images, which is known to only about +-2.5 points.

Since 8133c63 a later held-out check that the split cannot tell from the best (paired sign test, two standard
errors) wins the tie, and `summary.json` lists the checks (`recover_checks`) and the step kept. Same machine, 9.5
minutes, `recovery.py --models resnet32` / `--models resnet20` (seed 0) and `--models resnet32 -- --seed 1`:

    model     target          seed  recovered   gap    gap se   recover s   epochs       peak RSS   agr train / held-out / eval   kept / old rule
    resnet32  --ratio 0.5     0     81.80       2.00   0.75     571         61.6 (cap)   1078 MiB   93.6 / 86.5 / 86.1 %          1725 / 1400 of 1725
    resnet32  --target-macs   0     81.00       2.80   0.75     572         61.3 (cap)   1106 MiB   93.0 / 87.0 / 85.8 %          1716 / 1716 of 1716
    resnet20  --ratio 0.5     0     80.60       0.75   0.82     571         101.1 (cap)  1097 MiB   92.0 / 86.0 / 83.8 %          2832 / 2240 of 2832
    resnet20  --target-macs   0     80.25       1.10   0.82     567         95.8 (cap)   1053 MiB   92.3 / 84.5 / 84.0 %          2682 / 1960 of 2682
    resnet32  --ratio 0.5     1     81.75       2.05   0.75     568         61.2 (cap)   1093 MiB   93.4 / 87.0 / 86.4 %          1715 / 1715 of 1715
    resnet32  --target-macs   1     82.30       1.50   0.76     568         61.8 (cap)   1108 MiB   93.5 / 84.0 / 85.6 %          1729 / 1680 of 1729

Over the five 9.5-minute --ratio 0.5 runs of ResNet-32 the gap averaged 1.96 (1.40-2.40); over the three
--target-macs runs 2.80 (1.50-4.10, the 4.10 under the old rule). The pruned ResNet-32 (0.23 M parameters, 34.7 M
MACs) is smaller than the unpruned ResNet-20 (0.27 M, 40.6 M), which scores 81.35 % on eval/ after training on all
50,000 labelled CIFAR-10 images; the target (82.30 %) asks it to beat that by a point from 1,800 unlabeled ones.
The held-out KL of the moving average still falls at the last ResNet-32 checks (0.390 -> 0.377 -> 0.377), so the
cap, not overfitting, ends those runs; ResNet-20's rose slightly after 1960 steps (0.431 -> 0.451).
On one NVIDIA H200 (a lent device run; torch 2.11.0+cu130 there, bf16 autocast, channels-last, ../shared copied
beside the checkout; `recovery.py --models resnet32`, seed 0): --ratio 0.5 82.05 % (gap 1.75, 120 epochs in 75 s,
importance 1.1 s), --target-macs 0.5 81.75 % (2.05, 77 s); `-- --recover-epochs 300` (--ratio 0.5): 82.10 % (1.70,
175 s). Two and a half times the schedule moved it 0.05 points: on these 1,800 images the half-width ResNet-32
levels off near 82.1 %, so no CPU speed-up would bring the 9.5-minute runs to the 1.5-point target on average.
Tried on resnet32 --ratio 0.5 (seed 0, scratch run, not taken): progressive resizing, the first 228 s of
recovery on images downscaled to 24 x 24 for teacher and student (1,245 cheaper steps, 84 epochs in all in the
cap): 81.70 %, held-out agreement 84.5 %, against 81.40-82.40 % for the default at seed 0.

The ResNet-32 --ratio 0.5 run ended 0.5 points below the same command at the same seed the stop before (81.70 %,
58.2 epochs): the time cap fits a different number of steps each run, so the schedule, and the result, differ.
Tried there on resnet32 --ratio 0.5 (seed 0, scratch runs through the pipeline; the default 81.70 / 81.20 %), none
taken: matching every residual block's output (15 blocks, normalised squared error, weight 1; the teacher cannot be
folded, 47 epochs in the cap) 81.75; batch 32 (50 epochs) 81.85; BatchNorm statistics re-estimated on the clean
training images after pruning (held-out agreement before recovery 25.5 -> 59 %) and then frozen for distillation:
non-finite loss at step 22 with lr 0.01, 81.20 with lr 0.001.

A float32 distillation step there is conv-bound (mkldnn convolution forward and backward ~68 % of it; batch 32 /
64 / 128: 160 / 318 / 609 ms; `torch.compile` of the student: 65 s to compile, then 318 ms), so only the time cap
separates it from the 120 automatic epochs. A teacher that
averages its logits over the image and its mirror (84.75 % on eval against 83.80 %) doubles the teacher's share
of each step: 44 epochs in the cap, 81.25 % (ResNet-32 --ratio 0.5, seed 0); not taken.

Earlier, on an AVX-512 BF16 CPU (bf16, teacher BatchNorms folded, moving average of the student's
weights judged and kept (decay 0.999), 120 automatic epochs, 8-minute cap; `recovery.py` then
`recovery.py -- --seed 1`, each run alone; unpruned 81.35 % / 83.80 %):

    model     target          recovered s0 / s1   mean gap   recover s   epochs        peak RSS
    resnet20  --ratio 0.5     80.35 / 80.40       0.98       313-319     120           ~1.0 GiB
    resnet20  --target-macs   79.95 / 80.35       1.20       312-320     120           ~1.0 GiB
    resnet32  --ratio 0.5     81.90 / 81.70       2.00       480         112-113 (cap) ~1.0 GiB
    resnet32  --target-macs   81.85 / 82.10       1.83       480         111-114 (cap) ~1.0 GiB

The previous default, the student's own weights (`-- --recover-ema 0`; same seeds and settings otherwise):

    model     target          recovered s0 / s1   mean gap   recover s   epochs        peak RSS
    resnet20  --ratio 0.5     80.45 / 80.10       1.08       309-310     120           ~1.0 GiB
    resnet20  --target-macs   79.60 / 80.40       1.35       311-313     120           ~1.0 GiB
    resnet32  --ratio 0.5     81.45 / 81.35       2.40       479-480     116-117 (cap) ~1.0-1.1 GiB
    resnet32  --target-macs   80.65 / 82.00       2.48       480         117-118 (cap) ~1.0 GiB

Earlier, in float32 (eval/ has 2,000 images, and runs that differ only in summation order — channels-last —
or seed land up to 1.5 points apart):

    model     target          budget                      recovered (seed)            recover s
    resnet20  --target-macs   60 epochs (old default)     78.95 (0)  79.75 (1)        255-300
    resnet20  --target-macs   120 epochs, 8-min cap       80.80 (0)  80.25 (1)  79.35 (0, channels-last)  448-480
    resnet20  --ratio 0.5     120 epochs, 8-min cap       80.70 (0)                   479
    resnet32  --ratio 0.5     60 epochs                   82.30 (0)  81.50 (0, channels-last)  437, 695*
    resnet32  --ratio 0.5     8-min cap (72 / 81 epochs)  81.50 (0)  80.60 (0, channels-last)  476, 473
    resnet32  --target-macs   60 epochs                   81.35 (0)                   438
    resnet32  --target-macs   8-min cap (69 / 71 epochs)  80.10 (0)  81.10 (0, channels-last)  468, 414

    * run beside the test suite

Tried on resnet32 --ratio 0.5 and not adopted (within the spread; float32, 8-min cap unless said):
CutMix or per-sample mixup per batch, half each: 82.00 (seed 0), 80.70 (seed 1); mixup alone
(lambda ~ U(0, 1)) instead of CutMix: 80.70; --recover-features 1.0: 81.65; bf16, 240 epochs, no
cap (1,569 s beside other work): 82.10. Even the doubled schedule ends 1.7 points short, so
ResNet-32 at half width looks bound by the 1,800 distinct training images more than by time.
With bf16 and the folded teacher (seed 0, scratch runs): 120 epochs 81.70 (372 s), 170 epochs 81.50,
MSE on logits instead of KL 80.60, colour/contrast jitter 81.40, random-resized crop instead of
crop-flip 80.30, peak lr 0.02 80.90, peak lr 0.005 81.75 (0.01: 81.70); re-estimating BatchNorm statistics on clean images afterwards lost 1.35-1.4 points.
Gradual pruning (scratch, seed 0): the removed channels faded out at their consumers over 40 epochs of the
full-width model, then cut and 80 more epochs: 81.60, against 81.70 one-shot; not taken.
With the weight average (decay 0.999; 120 epochs, no cap, seed 0): 82.35; with temperature 2: 81.30, 8: 81.65;
decay 0.9995: 82.35; no weight decay: 81.70; 160 epochs (530 s): 81.85. The defaults stay (T=4, decay 0.999, weight decay 5e-4).
Also with the weight average (120 epochs, no cap, seed 0; the default itself reproduced 82.35 exactly): weight decay
1e-3: 81.55; decay towards the starting weights (L2-SP, 0.05) instead of zero: 81.75; stage-feature matching at
weight 5: 81.25; --target-macs with importance divided by each channel's MAC cost (keeps stage-3 width, cap 0.75):
81.05. Against the original on the 2,000 eval images all of these, the default included, agree 86.8-87.1 %,
while on their own 1,800 training images (clean) they agree 93-94 %: recovery is bound by the number of
distinct images (at seed 0; the default at seed 1, same settings, recovered 81.00 % with eval agreement 83.70 %,
so agreement moves between seeds too). CutMix on every batch instead of half (seeds 0 / 1): 81.50 / 81.95 %
against 82.35 / 81.00 %, with eval agreement 87.65 / 86.25 % against 87.05 / 83.70 % and mean KL 0.34 / 0.38
against 0.38 / 0.53: better matched in both seeds, top-1 level on average; not taken on two runs, the lead
to test next. The "agr train" / "held-out" columns show it per run; with `-- --max-images 1000` (900
training images, 100 held out, same 480 s) ResNet-32 --ratio 0.5 recovered to 80.55 % (3.25 short; agreement
94.6 % on training images, 83.0 % held out) against 82.05 % (1.75 short; 93.3 % / 90.0 %) with all 1,800.
Those two runs (seed 0) went through the CLI, which sets OMP_WAIT_POLICY=PASSIVE: a distillation step there
takes ~150-160 ms against ~120-130 ms in a scratch process without it (or with GOMP_SPINCOUNT=300000), which is
why the CLI runs hit the 8-minute cap at 112-116 epochs while the scratch runs above finished 120 in ~400 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CALIB, EVAL, MODELS, ROOT, paired_gap, require_shared

TARGETS = {"ratio": ["--ratio", "0.5"], "macs": ["--target-macs", "0.5"]}


def run(model: str, target: str, out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-c", "import resource,sys,runpy; sys.argv=sys.argv[1:]; "
           "from compress.cli.main import main\ntry:\n main(sys.argv[1:])\nfinally:\n "
           "print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)",
           "compress", "prune", str(MODELS[model]), "--arch", f"cifar_{model}", "--calib", str(CALIB),
           "--eval", str(EVAL), *TARGETS[target], "-o", str(out), "--overwrite", "--no-progress", "--json", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"{model} {target} failed:\n{proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout)
    peak = [line for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KIB")]
    summary["peak_rss_mib"] = int(peak[-1].split()[1]) / 1024 if peak else None
    summary["wall_seconds"] = time.perf_counter() - start
    return summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="resnet20,resnet32")
    parser.add_argument("--targets", default="ratio,macs")
    parser.add_argument("--out", default=None, help="keep the pruned folders here (default: a temporary folder)")
    parser.add_argument("extra", nargs="*", help="extra compress prune options, after --")
    args = parser.parse_args()
    require_shared()
    print(f"{'model':<10}{'target':<18}{'unpruned':>9}{'one-shot':>9}{'recovered':>10}{'gap':>7}{'MACs':>16}"
          f"{'recover s':>10}{'epochs':>7}{'prec':>6}{'peak RSS':>10}{'cap':>6}{'agr train':>10}{'held-out':>9}"
          f"{'gap se':>7}{'agr eval':>9}")
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.out or scratch
        for model in args.models.split(","):
            for target in args.targets.split(","):
                folder = Path(tmp) / f"{model}-{target}"
                s = run(model, target, folder, args.extra)
                gap = (s["top1_before"] - s["top1_recovered"]) * 100
                paired = paired_gap(MODELS[model], f"cifar_{model}", folder)
                if abs(paired["top1_recovered"] - s["top1_recovered"]) * paired["images"] > 1.5:  # a near-tie may flip
                    sys.exit(f"{folder}: reloaded model scores {paired['top1_recovered']:.2%} on eval/, the run "
                             f"reported {s['top1_recovered']:.2%}")
                macs = f"{s['macs_before'] / 1e6:.1f}->{s['macs_after'] / 1e6:.1f}M"
                print(f"{model:<10}{' '.join(TARGETS[target]):<18}{s['top1_before']:>9.2%}{s['top1_pruned']:>9.2%}"
                      f"{s['top1_recovered']:>10.2%}{gap:>6.2f}p{macs:>16}{s['recover_seconds']:>10.0f}"
                      f"{s['recover_epochs']:>7.1f}{s.get('recover_precision', '-'):>6}{s['peak_rss_mib']:>9.0f}M"
                      f"{s.get('max_layer_ratio') or 0:>6.3f}{_pct(s.get('agreement_train')):>10}"
                      f"{_pct(s.get('agreement_recovered')):>9}{paired['se']:>6.2f}p{_pct(paired['agreement']):>9}",
                      flush=True)


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


if __name__ == "__main__":
    main()
