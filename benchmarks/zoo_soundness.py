"""Print the dependency-graph table over the model zoo: groups, protection and its reasons,
removable channels, MACs before/after a random 40 % cut, soundness max-diff, and timings.
Also times graph + surgery on torchvision ResNet-50 at 224x224 (target: under 5 s).

    .venv/bin/python benchmarks/zoo_soundness.py

Results: benchmarks/RESULTS.md, section "Zoo soundness".
"""

from __future__ import annotations

import copy
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from tests.zoo import TORCHVISION, zoo_row  # noqa: E402


def resnet50_timing() -> tuple[float, float]:
    import torchvision

    from compress.prune.phases import channel_groups
    from compress.prune.plan import PrunePolicy, select
    from compress.prune.surgery import apply_cuts

    model = torchvision.models.resnet50().eval()
    x = torch.randn(1, 3, 224, 224)
    start = time.perf_counter()
    groups = channel_groups(model, x)
    rng = random.Random(0)
    plan = select(groups, {u: rng.random() for u in groups.prunable_units}, PrunePolicy(ratio=0.5))
    t_graph = time.perf_counter() - start
    start = time.perf_counter()
    apply_cuts(copy.deepcopy(model), plan.cuts)
    return t_graph, time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(2)
    header = f"{'model':<22}{'groups':>7}{'prot':>6}{'removable':>10}{'MACs before':>13}{'after':>11}{'max diff':>10}{'graph s':>9}{'cut s':>7}  protected by"
    print(header)
    print("-" * len(header))
    for name in ["cifar_resnet20", "cifar_resnet56", *sorted(TORCHVISION)]:
        r = zoo_row(name)
        print(f"{r.model:<22}{r.groups:>7}{r.protected:>6}{r.removable:>10}{r.macs_before / 1e6:>12.1f}M"
              f"{r.macs_after / 1e6:>10.1f}M{r.max_diff:>10.1e}{r.graph_seconds:>9.2f}{r.cut_seconds:>7.2f}  {r.reasons or '-'}")
    t_graph, t_cut = resnet50_timing()
    print(f"\nResNet-50 at 224x224: graph + plan {t_graph:.2f} s, surgery {t_cut:.2f} s, total {t_graph + t_cut:.2f} s (target < 5 s)")


if __name__ == "__main__":
    main()
