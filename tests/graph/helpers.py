from __future__ import annotations

import copy
import random

import torch
import torch.nn as nn

from compress.models.loading import load_saved
from compress.prune.phases import channel_groups
from compress.prune.plan import PrunePolicy, select
from compress.artifacts.saved import save_pruned
from compress.spec import ModelSpec
from compress.prune.surgery import apply_cuts
from compress.prune.verify import check_cut, max_difference, zeroed_reference


def groups_of(model, example, **policy):
    return channel_groups(model, example, PrunePolicy(ratio=0.5, **policy) if policy else None)


def random_cut(model, example, *, ratio=0.5, seed=0, round_to=1, **policy):
    """Prune a random half of the prunable channels; return (groups, plan, pruned, max diff)."""
    groups = groups_of(model, example, **policy)
    rng = random.Random(seed)
    scores = {u: rng.random() for u in groups.prunable_units}
    plan = select(groups, scores, PrunePolicy(ratio=ratio, round_to=round_to, max_layer_ratio=0.9))
    pruned = apply_cuts(copy.deepcopy(model), plan.cuts)
    diff = max_difference(zeroed_reference(model, plan.cuts), pruned, example)
    return groups, plan, pruned, diff


def cut_prove_reload(model: nn.Module, x: torch.Tensor, arch: str, kwargs: dict, folder):
    """Random half cut, the proof, then the saved folder reloaded by replaying the cuts."""
    model.eval()
    groups, plan, pruned, diff = random_cut(model, x)
    assert plan.channels_removed > 0
    check_cut(model, pruned, plan.cuts, x)  # raises unless the cut is exact
    spec = ModelSpec("state_dict", str(folder / "original.pt"), arch=arch, arch_kwargs=kwargs,
                     input_size=tuple(x.shape[1:]))
    save_pruned(folder / "out", pruned, spec, plan.cuts)
    reloaded = load_saved(folder / "out", trust=True).model  # the arch is the test module: trusted by its writer
    with torch.no_grad():
        assert torch.equal(reloaded(x), pruned.eval()(x))
    return groups, plan, pruned
