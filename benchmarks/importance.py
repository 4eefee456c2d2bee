"""One-shot accuracy per importance criterion, and what the estimation costs.

On ../shared/models/resnet32-cifar10.th: importance on the 2,000 unlabeled calibration images
(labels only for the labelled 'taylor' baseline, from calib_labels.csv), accuracy on eval/.
Prints one-shot top-1 at --ratio 0.3 and 0.5 for taylor-sq, taylor-abs, l1, random and taylor,
then the estimation time and peak RSS beside those of one plain forward+backward pass over the
same images (each measured in a fresh process).

    .venv/bin/python benchmarks/importance.py [--model resnet32]

Results: benchmarks/RESULTS.md, section "Importance criteria".
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time

from common import LABELS, calib_images, eval_set, load_cifar, peak_rss_mib, require_shared

CRITERIA = ["taylor-sq", "taylor-abs", "l1", "random", "taylor"]


def _setup(model_name):
    import torch

    from compress.calibrate import scan_folder
    from compress.calibrate.preprocess import Preprocess

    torch.set_num_threads(2)
    loaded = load_cifar(model_name)
    pre = Preprocess.from_dict(loaded.spec.preprocess)
    paths = scan_folder(__import__("common").CALIB).paths
    return loaded, pre, paths, calib_images(pre, paths)


def child(mode: str, model_name: str) -> None:
    """Run one estimation (or one plain forward+backward pass) and print time and peak RSS."""
    import torch
    import torch.nn.functional as F

    loaded, pre, paths, images = _setup(model_name)
    model = loaded.model
    start = time.perf_counter()
    if mode == "forward-backward":
        model.eval()
        for i in range(0, len(images), 64):
            logits = model(images[i:i + 64])
            F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long)).backward()
    else:
        from compress.prune.importance import ImportanceConfig, estimate
        from tests.graph.helpers import groups_of

        groups = groups_of(model, images[:2])
        estimate(model, groups, images, ImportanceConfig(name=mode, progress=False, batch_size=64))
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mib": peak_rss_mib()}))


def accuracy_table(model_name: str) -> None:
    import torch

    from compress.calibrate import read_labels_csv
    from compress.recover import top1_accuracy
    from compress.prune.importance import ImportanceConfig, estimate, unit_scores
    from compress.prune.plan import PrunePolicy, select
    from compress.prune.surgery import apply_cuts
    from tests.graph.helpers import groups_of

    loaded, pre, paths, images = _setup(model_name)
    ev_x, ev_y = eval_set(pre)
    model = loaded.model
    labels = torch.tensor(read_labels_csv(LABELS, paths))
    print(f"{model_name}: unpruned top-1 {top1_accuracy(model, ev_x, ev_y):.2%} on {len(ev_y)} eval images")
    groups = groups_of(model, images[:2])
    print(f"{'criterion':<12}{'ratio':>7}{'MACs':>8}{'one-shot top-1':>16}{'estimate s':>12}")
    for name in CRITERIA:
        start = time.perf_counter()
        result = estimate(model, groups, images, ImportanceConfig(name=name, progress=False),
                          labels=labels if name == "taylor" else None)
        seconds = time.perf_counter() - start
        scores = unit_scores(groups, result)
        for ratio in (0.3, 0.5):
            plan = select(groups, scores, PrunePolicy(ratio=ratio, round_to=1, max_layer_ratio=0.9))
            pruned = apply_cuts(copy.deepcopy(model), plan.cuts)
            acc = top1_accuracy(pruned, ev_x, ev_y)
            print(f"{name:<12}{ratio:>7}{plan.macs_after / plan.macs_before:>7.2f}x{acc:>15.2%}{seconds:>12.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet32")
    parser.add_argument("--child", default=None)
    parser.add_argument("--cost-only", action="store_true", help="skip the accuracy table")
    args = parser.parse_args()
    require_shared()
    if args.child:
        child(args.child, args.model)
        return
    if not args.cost_only:
        accuracy_table(args.model)
    print("\ncost over the same 2,000 images, batch 64, each in a fresh process:")
    for mode in ("forward-backward", "taylor-sq", "taylor-abs"):
        out = subprocess.run([sys.executable, __file__, "--model", args.model, "--child", mode],
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        figures = json.loads(out)
        print(f"{mode:<18} {figures['seconds']:6.1f} s   peak RSS {figures['peak_rss_mib']:7.0f} MiB")


if __name__ == "__main__":
    main()
