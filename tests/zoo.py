"""The model zoo for soundness sweeps (tests/graph/test_zoo.py, benchmarks/zoo_soundness.py)."""

from __future__ import annotations

import copy
import random
import time
import warnings
from dataclasses import dataclass

import torch

from compress.prune.phases import channel_groups
from compress.prune.plan import PrunePolicy, select
from compress.prune.surgery import apply_cuts
from compress.prune.verify import max_difference, zeroed_reference

TORCHVISION = {
    "resnet18": 64, "resnet50": 64, "resnext50_32x4d": 64, "wide_resnet50_2": 64, "vgg11_bn": 64,
    "mobilenet_v2": 64, "mobilenet_v3_small": 64, "mobilenet_v3_large": 64, "efficientnet_b0": 64,
    "regnet_y_400mf": 64, "regnet_x_400mf": 64, "densenet121": 64, "shufflenet_v2_x0_5": 64,
    "squeezenet1_1": 64, "mnasnet0_5": 64, "convnext_tiny": 64, "googlenet": 64, "inception_v3": 80,
}


@dataclass
class ZooRow:
    model: str
    groups: int
    protected: int
    reasons: str
    removable: int
    macs_before: int
    macs_after: int
    max_diff: float
    graph_seconds: float
    cut_seconds: float


def build_model(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    if name.startswith("cifar_"):
        from compress.archs import cifar_resnet

        model, size = getattr(cifar_resnet, name.removeprefix("cifar_"))(), 32
    else:
        import torchvision

        kwargs = {"aux_logits": False, "init_weights": True} if name in ("googlenet", "inception_v3") else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, size = torchvision.models.get_model(name, weights=None, num_classes=10, **kwargs), TORCHVISION[name]
    for m in model.modules():  # non-trivial statistics, so a wrong cut shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval(), torch.randn(2, 3, size, size)


def zoo_row(name: str, ratio: float = 0.4, seed: int = 0) -> ZooRow:
    model, x = build_model(name)
    start = time.perf_counter()
    groups = channel_groups(model, x)
    graph_seconds = time.perf_counter() - start
    rng = random.Random(seed)
    scores = {u: rng.random() for u in groups.prunable_units}
    plan = select(groups, scores, PrunePolicy(ratio=ratio, round_to=1))
    start = time.perf_counter()
    pruned = apply_cuts(copy.deepcopy(model), plan.cuts)
    cut_seconds = time.perf_counter() - start
    with torch.no_grad():
        scale = max(1.0, float(model(x).abs().max()))
    diff = max_difference(zeroed_reference(model, plan.cuts), pruned, x) / scale
    reasons = sorted({p.op for g in groups.protected_groups() for p in g.protected} - {"input", "output", "policy"})
    return ZooRow(name, len(groups.groups), len(groups.protected_groups()), ",".join(reasons),
                  plan.channels_prunable, plan.macs_before, plan.macs_after, diff, graph_seconds, cut_seconds)
