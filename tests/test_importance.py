"""The estimators against a brute-force reference: per-image loops, explicit gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from compress.prune.importance import ImportanceConfig, estimate, unit_scores
from compress.prune.importance.taylor import random_gradient
from tests.graph.helpers import groups_of
from tests.toy_models import build


def _brute_force(model, groups, images, *, kind, labels=None, seed=0, draws=1):
    """s = sum_hw a * da per image per probed channel, with autograd.grad one image at a time."""
    probes = {p.module: p for p in groups.graph.probes}
    acc = {name: [] for name in probes}
    for i in range(len(images)):
        for draw in range(1 if kind == "mean" else draws):
            x = images[i:i + 1].clone().requires_grad_(True)
            captured = {}  # each probed activation, replaced by a clone we can differentiate against
            handles = [model.get_submodule(n).register_forward_hook(
                lambda m, inp, out, n=n: captured.__setitem__(n, out.clone()) or captured[n]) for n in probes]
            logits = model(x)
            for h in handles:
                h.remove()
            if kind == "mean":
                grad_out = torch.autograd.grad(F.cross_entropy(logits, labels[i:i + 1], reduction="sum"),
                                               [captured[n] for n in probes])
            else:
                g = random_gradient(logits.detach(), torch.tensor([i]), seed, draw)
                grad_out = torch.autograd.grad(logits, [captured[n] for n in probes], grad_outputs=g)
            for (n, p), grad in zip(probes.items(), grad_out):
                a = captured[n].detach()
                dims = [d for d in range(a.dim()) if d not in (0, p.axis)]
                acc[n].append(((a * grad).sum(dims) if dims else a * grad)[0].double())
    scores = np.full(len(groups.graph.sets), np.nan)
    for n, p in probes.items():
        s = torch.stack(acc[n])
        value = {"sq": (s * s).mean(0), "abs": s.abs().mean(0), "mean": s.mean(0).abs()}[kind].numpy()
        scores[p.ids] = np.nan_to_num(scores[p.ids]) + value
    return scores


@pytest.mark.parametrize("toy", ["residual", "squeeze_excite", "channels_last"])
@pytest.mark.parametrize("name,kind", [("taylor-sq", "sq"), ("taylor-abs", "abs")])
def test_random_gradient_taylor_matches_brute_force(toy, name, kind):
    model, _ = build(toy)
    images = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    groups = groups_of(model, images[:2])
    config = ImportanceConfig(name=name, batch_size=4, progress=False, draws=2, device="cpu")  # exact float32 sums
    result = estimate(model, groups, images, config)
    expected = _brute_force(model, groups, images, kind=kind, draws=2)
    measured = ~np.isnan(expected)
    assert measured.sum() > 0
    np.testing.assert_allclose(result.id_scores[measured], expected[measured], rtol=1e-4, atol=1e-10)


def test_labelled_taylor_matches_brute_force_and_needs_labels():
    model, _ = build("chain")
    images = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 1, 2, 3, 4])
    groups = groups_of(model, images[:2])
    config = ImportanceConfig(name="taylor", batch_size=2, progress=False, device="cpu")
    result = estimate(model, groups, images, config, labels=labels)
    expected = _brute_force(model, groups, images, kind="mean", labels=labels)
    measured = ~np.isnan(expected)
    np.testing.assert_allclose(result.id_scores[measured], expected[measured], rtol=1e-4, atol=1e-10)
    from compress.errors import UsageError

    with pytest.raises(UsageError, match="labels"):
        estimate(model, groups, images, ImportanceConfig(name="taylor", progress=False))


def test_deterministic_for_a_seed_and_different_across_seeds():
    model, _ = build("residual")
    images = torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    groups = groups_of(model, images[:2])
    run = lambda seed, bs: estimate(model, groups, images, ImportanceConfig(seed=seed, batch_size=bs, progress=False)).id_scores
    a, b, c = run(0, 8), run(0, 3), run(1, 8)
    np.testing.assert_allclose(a, b, rtol=1e-9, equal_nan=True)  # batch size does not matter: seeds are per image
    assert not np.allclose(np.nan_to_num(a), np.nan_to_num(c))


def test_unit_scores_sum_members_and_model_is_left_clean():
    model, _ = build("residual")
    images = torch.randn(4, 3, 8, 8)
    groups = groups_of(model, images[:2], prune_stem=True)
    requires = [p.requires_grad for p in model.parameters()]
    result = estimate(model, groups, images, ImportanceConfig(progress=False))
    assert [p.requires_grad for p in model.parameters()] == requires
    assert not any(m._forward_hooks for m in model.modules())
    scores = unit_scores(groups, result)
    stream = next(g for g in groups.groups if "c2:out" in g.layers)  # stem + c2 + residual: several probes
    root = stream.units[0]
    members = [i for i in range(len(result.id_scores)) if groups.graph.sets.find(i) == root]
    assert scores[root] == pytest.approx(np.nansum(result.id_scores[members]))


def test_l1_and_random_give_scores_for_every_prunable_unit():
    model, _ = build("chain")
    images = torch.randn(2, 3, 8, 8)
    groups = groups_of(model, images)
    for name in ("l1", "random"):
        scores = unit_scores(groups, estimate(model, groups, images, ImportanceConfig(name=name, progress=False)))
        assert set(scores) == set(groups.prunable_units) and all(np.isfinite(v) for v in scores.values())
    w = model.b[0].weight.detach().abs().flatten(1).sum(1)
    l1 = unit_scores(groups, estimate(model, groups, images, ImportanceConfig(name="l1", progress=False)))
    b_units = next(g for g in groups.groups if "b.0:out" in g.layers).units
    assert sorted(l1[u] for u in b_units) == pytest.approx(sorted(w.tolist()))
