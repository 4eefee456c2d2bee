from __future__ import annotations

import copy
import random

from compress.graph.analysis import analyze
from compress.graph.groups import apply_policy, build_groups
from compress.graph.trace import trace
from compress.plan import PrunePolicy, select
from compress.surgery import apply_cuts
from compress.verify import max_difference, zeroed_reference


def groups_of(model, example, **policy):
    graph = analyze(trace(model, example))
    apply_policy(graph, **policy)
    return build_groups(graph)


def random_cut(model, example, *, ratio=0.5, seed=0, round_to=1, **policy):
    """Prune a random half of the prunable channels; return (groups, plan, pruned, max diff)."""
    groups = groups_of(model, example, **policy)
    rng = random.Random(seed)
    scores = {u: rng.random() for u in groups.prunable_units}
    plan = select(groups, scores, PrunePolicy(ratio=ratio, round_to=round_to, max_layer_ratio=0.9))
    pruned = apply_cuts(copy.deepcopy(model), plan.cuts)
    diff = max_difference(zeroed_reference(model, plan.cuts), pruned, example)
    return groups, plan, pruned, diff
