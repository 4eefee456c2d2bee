"""Recovery by self-distillation on the real CIFAR ResNets, with the product's default settings.

Importance and distillation use ../shared/data/cifar10/calib only (2,000 unlabeled images);
accuracy is measured on eval/ only. For each model and target (--ratio 0.5, --target-macs 0.5)
prints unpruned, one-shot and recovered top-1, MACs, recovery wall time and peak RSS.
Each run is a fresh process (`compress prune … --json`), so its peak RSS is its own.

    .venv/bin/python benchmarks/recovery.py [--models resnet20,resnet32] [--targets ratio,macs] [-- --seed 1]

Results, run by run with seeds and machines: benchmarks/RESULTS.md, section
"Recovery on the CIFAR ResNets".
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
