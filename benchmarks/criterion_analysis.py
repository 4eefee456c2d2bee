"""Which channels each criterion removes, layer by layer, on a real CIFAR ResNet (no recovery).

For each pruned layer: its width before and after under each criterion, and how many of the removed
channels two criteria share (overlap = |A & B| / |A|; chance level for two random half-cuts is ~50 %).
Also the Spearman correlation of the two criteria's unit scores inside each layer.

    .venv/bin/python benchmarks/criterion_analysis.py [--model resnet20] [--criteria taylor-sq,l1]
"""

from __future__ import annotations

import argparse
import itertools
from types import SimpleNamespace

import numpy as np

from common import CALIB, MODELS, require_shared


def plans(model: str, criteria: list[str], ratio: float, seed: int):
    import dataclasses

    from compress.prune.importance import ImportanceConfig
    from compress.prune.plan import PrunePolicy
    from compress.run import stages
    from compress.run.context import QUIET, PruneConfig, RunContext

    out = {}
    base = PruneConfig(checkpoint=str(MODELS[model]), calib=str(CALIB), policy=PrunePolicy(ratio=ratio),
                       load={"arch": f"cifar_{model}"}, seed=seed, progress=False)
    run = RunContext(config=base, say=QUIET)
    for stage in (stages.load, stages.calibration, stages.task, stages.graph):
        stage(run)
    for name in criteria:
        run.config = dataclasses.replace(base, importance=ImportanceConfig(name=name, seed=seed, progress=False))
        stages.importance(run)
        stages.plan(run)
        out[name] = SimpleNamespace(scores=run.scores, plan=run.plan)
    return run.groups, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--criteria", default="taylor-sq,l1")
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    require_shared()
    criteria = args.criteria.split(",")
    groups, res = plans(args.model, criteria, args.ratio, args.seed)
    structures = structure_units(groups)
    print(f"{'structure':<28}{'units':>6}" + "".join(f"{c + ' kept':>16}" for c in criteria)
          + "".join(f"{a[:6] + '&' + b[:6] + ' ovl':>18}{'rho':>6}" for a, b in itertools.combinations(criteria, 2)))
    for label, units in structures:
        removed = {c: {u for u in units if u in set(res[c].plan.removed)} for c in criteria}
        row = f"{label:<28}{len(units):>6}" + "".join(f"{len(units) - len(removed[c]):>16}" for c in criteria)
        for a, b in itertools.combinations(criteria, 2):
            ovl = len(removed[a] & removed[b]) / max(len(removed[a]), 1)
            row += f"{ovl:>18.0%}{rho(res[a].scores, res[b].scores, units):>6.2f}"
        print(row)
    for a, b in itertools.combinations(criteria, 2):
        ra, rb = set(res[a].plan.removed), set(res[b].plan.removed)
        print(f"all: {a} and {b} remove {len(ra & rb)} common of {len(ra)} / {len(rb)} units "
              f"({len(ra & rb) / max(len(ra), 1):.0%})")


def structure_units(groups) -> list[tuple[str, list[int]]]:
    """(a label, the prunable unit roots) per channel group."""
    units = set(groups.prunable_units)
    return [(f"{g.index}:{g.layers[0]}"[:27], [u for u in g.units if u in units]) for g in groups.groups
            if any(u in units for u in g.units)]


def rho(a: dict, b: dict, units: list[int]) -> float:
    xa = np.argsort(np.argsort([a.get(u, 0.0) for u in units]))
    xb = np.argsort(np.argsort([b.get(u, 0.0) for u in units]))
    return float(np.corrcoef(xa, xb)[0, 1]) if len(units) > 2 else float("nan")


if __name__ == "__main__":
    main()
