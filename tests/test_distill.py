"""Self-distillation and batch augmentation on tiny conv nets and synthetic images."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn as nn

from compress.recover.augment import BatchAugment, cutmix, random_crop_flip, random_resized_crop_flip, resolve_kind
from compress.recover import (
    AUTO_MINUTES,
    DistillConfig,
    DistillResult,
    agreement,
    auto_epochs,
    cpu_bf16,
    distill,
    not_worse,
    top1_accuracy,
)
from compress.recover.budget import time_cap
from compress.recover.config import CAP_FIRST_CHECK
from tests.distill_data import FAST, images, tiny_net


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny nets gain nothing from threads; on a shared CPU, OpenMP spinning makes them 10x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class EvalSnapshots:
    """Forward pre-hook: counts training forwards and snapshots the weights at each evaluation,
    keyed by the number of training steps done so far (what the run calls the step)."""

    def __init__(self, model: nn.Module):
        self.model, self.train_calls, self.snaps = model, 0, {}
        self.handle = model.register_forward_pre_hook(self)

    def __call__(self, module, inputs):
        if module.training:
            self.train_calls += 1
        elif self.train_calls not in self.snaps:
            self.snaps[self.train_calls] = state_of(self.model)


# ----------------------------------------------------------------------------- distillation


def test_loss_decreases_and_agreement_rises(pair):
    student, teacher, train, hold = pair
    res = distill(student, teacher, train, hold, DistillConfig(**FAST), progress=False)
    assert isinstance(res, DistillResult) and res.stopped is None and res.steps == 60
    losses = [h["loss"] for h in res.history if h["loss"] is not None]
    assert losses[-1] < 0.6 * losses[0]
    assert res.agreement_after >= res.agreement_before + 0.2
    assert res.kl_after < res.kl_before
    assert res.history[0]["step"] == 0 and res.history[-1]["step"] == 60
    measured, kl = agreement(res.student, teacher, hold)
    assert measured == pytest.approx(res.agreement_after) and kl == pytest.approx(res.kl_after, rel=1e-4)
    assert res.config["lr"] == 0.2 and res.device == "cpu" and res.seconds > 0
    assert res.epochs == pytest.approx(60 / (192 // 32))


def test_same_seed_same_run_other_seed_differs(pair):
    student, teacher, train, hold = pair
    cfg = DistillConfig(**{**FAST, "steps": 15, "cutmix": 0.5})
    a = distill(copy.deepcopy(student), teacher, train, hold, cfg, progress=False)
    b = distill(copy.deepcopy(student), teacher, train, hold, cfg, progress=False)
    c = distill(copy.deepcopy(student), teacher, train, hold, DistillConfig(**{**FAST, "steps": 15, "seed": 7}),
                progress=False)
    assert same_state(state_of(a.student), state_of(b.student))
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert not same_state(state_of(a.student), state_of(c.student))


def test_teacher_untouched_and_modes_restored(pair):
    student, teacher, train, hold = pair
    before = state_of(teacher)
    flags = [p.requires_grad for p in teacher.parameters()]
    teacher.train()  # the caller's mode must come back, even though distillation runs it in eval
    student.eval()
    res = distill(student, teacher, train, hold, DistillConfig(**{**FAST, "steps": 10}), progress=False)
    assert same_state(state_of(teacher), before)
    assert teacher.training and not res.student.training
    assert [p.requires_grad for p in teacher.parameters()] == flags
    assert all(p.grad is None for p in teacher.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in [*teacher.modules(), *student.modules()])


def test_non_finite_loss_stops_and_restores_last_good_weights(pair):
    student, teacher, train, hold = pair
    snaps = EvalSnapshots(student)
    k = 25

    def poison(module, inputs, output):  # the student's logits become inf from training step k+1
        return output * math.inf if module.training and snaps.train_calls > k else output

    handle = student[-1].register_forward_hook(poison)
    cfg = DistillConfig(**{**FAST, "eval_every": 5})
    res = distill(student, teacher, train, hold, cfg, progress=False)
    handle.remove()
    snaps.handle.remove()
    assert res.stopped == f"non-finite loss at step {k + 1}"
    assert res.steps == k
    assert all(torch.isfinite(v).all() for v in res.student.state_dict().values() if v.is_floating_point())
    assert res.best_step <= k and res.best_step % 5 == 0
    assert same_state(state_of(res.student), snaps.snaps[res.best_step])


def test_keyboard_interrupt_stops_and_restores_best(pair):
    student, teacher, train, hold = pair
    snaps = EvalSnapshots(student)
    k = 17

    def interrupt(module, inputs):
        if module.training and snaps.train_calls == k:  # the k-th training forward
            raise KeyboardInterrupt

    handle = student.register_forward_pre_hook(interrupt)
    res = distill(student, teacher, train, hold, DistillConfig(**FAST), progress=False)
    handle.remove()
    snaps.handle.remove()
    assert res.stopped == f"interrupted at step {k}"
    assert res.steps == k - 1 and res.best_step in (0, 10)
    assert same_state(state_of(res.student), snaps.snaps[res.best_step])
    assert res.student.training  # the incoming mode: a fresh nn.Module is in train mode


def test_best_checkpoint_is_kept_when_training_goes_wrong(pair):
    student, teacher, train, hold = pair
    calls = {"n": 0}
    good_calls = 1 + 20  # one call caches the held-out logits, then 20 good training steps

    def sabotage(module, inputs, output):  # after step 20 the teacher's training targets are reversed
        calls["n"] += 1
        return -output * 3 if calls["n"] > good_calls else output

    handle = teacher.register_forward_hook(sabotage)
    res = distill(student, teacher, train, hold, DistillConfig(**{**FAST, "eval_every": 5}), progress=False)
    handle.remove()
    curve = [(h["step"], h["holdout_agreement"]) for h in res.history]
    best = max(a for _, a in curve)
    assert res.best_step <= 25 < res.steps and curve[-1][1] < best - 0.3  # the sabotaged end is not kept
    kept = dict(curve)[res.best_step]
    assert res.agreement_after == kept and kept >= best - 0.1
    assert agreement(res.student, teacher, hold)[0] == pytest.approx(kept)


def test_not_worse_is_a_paired_sign_test():
    best = torch.tensor([1] * 175 + [0] * 25, dtype=torch.bool)
    assert not_worse(best, best)  # identical: a tie
    assert not_worse(best, torch.tensor([1] * 172 + [0] * 28, dtype=torch.bool))  # 3 fewer of 200: noise
    assert not not_worse(best, torch.tensor([1] * 160 + [0] * 40, dtype=torch.bool))  # 15 fewer, all the same way
    swapped = best.clone()
    swapped[:20] = False
    swapped[175:191] = True  # 20 lost, 16 gained: 4 fewer net among 36 that differ -> noise
    assert not_worse(best, swapped)
    assert not_worse(torch.zeros(200, dtype=torch.bool), best)  # better is never worse


def test_a_later_check_within_held_out_noise_is_kept_over_an_earlier_higher_one(pair, monkeypatch):
    """The highest raw held-out figure is not what comes back when a later check differs from it by
    less than the held-out split can resolve; a clearly worse later check is not kept."""
    student, teacher, train, hold = pair
    n = 200
    script = iter([0.25, 0.86, 0.875, 0.86, 0.70])  # step 0, then the checks at steps 5, 10, 15, 20

    def scripted(*args, **kwargs):
        a = next(script)
        hits = torch.arange(n) < round(a * n)  # nested: each check agrees on a prefix of the images
        return a, 1.0 - a, hits

    from compress.recover import loop, selection

    monkeypatch.setattr(loop, "agreement_logits", scripted)
    cfg = DistillConfig(**{**FAST, "steps": 20, "eval_every": 5})
    res = distill(student, teacher, train, hold, cfg, progress=False)
    assert [h["holdout_agreement"] for h in res.history] == [0.25, 0.86, 0.875, 0.86, 0.70]
    assert res.best_step == 15 and res.agreement_after == 0.86
    # too few held-out images to call anything noise: the highest figure wins
    n = selection.SELECT_MIN_IMAGES - 1
    script = iter([0.25, 0.86, 0.875, 0.86, 0.70])
    res = distill(student, teacher, train, hold, cfg, progress=False)
    assert res.best_step == 10 and res.agreement_after == 0.875


def test_weight_average_warms_up_then_follows_the_student():
    from compress.recover.ema import WeightAverage

    net = tiny_net(4, seed=0)
    net[1].running_mean.fill_(0.5)
    avg = WeightAverage(net, 0.9)
    w0, m0 = net[0].weight.detach().clone(), net[1].running_mean.clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].running_mean.add_(2.0)
        net[1].num_batches_tracked.fill_(7)
    avg.update(1)  # warm-up: decay min(0.9, 2 / 11)
    keep = 2 / 11
    assert torch.allclose(avg.model[0].weight, w0 + (1 - keep))
    assert torch.allclose(avg.model[1].running_mean, m0 + 2 * (1 - keep))
    assert avg.model[1].num_batches_tracked.item() == 7  # counters are copied, not averaged
    assert not any(p.requires_grad for p in avg.model.parameters()) and not avg.model.training
    for step in range(2, 200):
        avg.update(step)
    assert torch.allclose(avg.model[0].weight, net[0].weight, atol=1e-4)  # a still student: the average reaches it


def test_weight_average_is_what_is_judged_and_returned(pair):
    student, teacher, train, hold = pair
    raw = distill(copy.deepcopy(student), teacher, train, hold, DistillConfig(**FAST), progress=False)
    avg = distill(copy.deepcopy(student), teacher, train, hold, DistillConfig(**{**FAST, "ema": 0.9}),
                  progress=False)
    assert [h["loss"] for h in avg.history] == [h["loss"] for h in raw.history]  # the same training run
    assert [h["holdout_agreement"] for h in avg.history] != [h["holdout_agreement"] for h in raw.history]
    assert not same_state(state_of(raw.student), state_of(avg.student))
    assert avg.agreement_after >= avg.agreement_before + 0.2
    assert agreement(avg.student, teacher, hold)[0] == pytest.approx(avg.agreement_after)
    assert avg.student.training and all(p.requires_grad for p in avg.student.parameters())


def test_loaders_with_index_tuples_and_epoch_budget(pair):
    student, teacher, train, hold = pair
    ds = torch.utils.data.TensorDataset(train, torch.arange(len(train)))
    loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(0))
    hold_loader = torch.utils.data.DataLoader(hold, batch_size=40)
    res = distill(student, teacher, loader, hold_loader, DistillConfig(epochs=2, lr=0.05, cutmix=0.0), progress=False)
    assert res.steps == 2 * len(loader) and res.train_images == len(train)
    assert res.agreement_after == pytest.approx(agreement(res.student, teacher, hold)[0])


def test_helpers_agreement_and_accuracy(pair):
    _, teacher, _, hold = pair
    agree, kl = agreement(teacher, teacher, hold, batch_size=7)
    assert agree == 1.0 and abs(kl) < 1e-5
    with torch.no_grad():
        labels = teacher(hold).argmax(1)
    assert top1_accuracy(teacher, hold, labels, batch_size=10) == 1.0
    assert top1_accuracy(teacher, hold, (labels + 1) % 5) == 0.0
    pairs = [(hold[:50], labels[:50]), (hold[50:], labels[50:])]
    assert top1_accuracy(teacher, pairs) == 1.0


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(epochs=3, steps=10), "both epochs and steps"),
        (dict(epochs=0), "epochs must be a positive"),
        (dict(steps=2.5), "steps must be a positive integer"),
        (dict(batch_size=0), "batch_size"),
        (dict(lr=-1.0), "lr must be positive"),
        (dict(momentum=1.0), "momentum"),
        (dict(optimizer="lion"), "unknown optimizer 'lion'"),
        (dict(temperature=0), "temperature"),
        (dict(warmup_fraction=1.0), "warmup_fraction"),
        (dict(augment="mixup"), "unknown augment 'mixup'"),
        (dict(pad_mode="edge"), "unknown pad_mode"),
        (dict(cutmix=1.5), "cutmix probability"),
        (dict(eval_every=0), "eval_every"),
        (dict(amp="fp8"), "unknown amp mode"),
        (dict(channels_last="yes"), "unknown channels_last"),
        (dict(ema=1.0), "ema decay"),
        (dict(ema=-0.1), "ema decay"),
        (dict(teacher_views=-1), "teacher_views"),
        (dict(teacher_views=1.5), "teacher_views"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistillConfig(**kwargs)


def test_config_to_dict_and_auto_budget(pair):
    d = DistillConfig(steps=5).to_dict()
    assert d["steps"] == 5 and d["epochs"] is None and d["temperature"] == 4.0 and d["ema"] == 0.999
    assert auto_epochs(1800) == pytest.approx(120.0) and auto_epochs(200) == pytest.approx(1080.0)
    assert auto_epochs(4500) == pytest.approx(30.36, abs=0.01) and auto_epochs(10**6) == 1.0
    epochs = [auto_epochs(n) for n in (100, 1000, 1800, 3000, 9000, 30000)]
    assert epochs == sorted(epochs, reverse=True)  # more images, fewer passes
    student, teacher, train, hold = pair
    with pytest.raises(ValueError, match="needs a CUDA device"):
        distill(student, teacher, train, hold, DistillConfig(steps=1, amp="fp16"), device="cpu", progress=False)
    with pytest.raises(ValueError, match="N >= 2"):
        distill(student, teacher, train[:1], hold, DistillConfig(steps=1), progress=False)


def test_teacher_views_run_the_teacher_once_per_pooled_view_and_never_in_the_loop(pair):
    student, teacher, train, hold = pair
    calls = [0]
    hook = teacher.register_forward_pre_hook(lambda m, a: calls.__setitem__(0, calls[0] + a[0].shape[0]))
    try:  # a hooked teacher is run as it is (not folded), so every image it sees is counted
        cfg = DistillConfig(**{**FAST, "steps": 40, "teacher_views": 2})
        res = distill(copy.deepcopy(student), teacher, train, hold, cfg, progress=False)
        pooled, calls[0] = calls[0], 0
        fresh = distill(copy.deepcopy(student), teacher, train, hold, DistillConfig(**{**FAST, "steps": 40}),
                        progress=False)
    finally:
        hook.remove()
    spe = train.shape[0] // FAST["batch_size"]
    assert res.teacher_views == 2 and res.views_note is None and res.steps == 40 and res.views_seconds > 0
    assert pooled == 2 * spe * FAST["batch_size"] + hold.shape[0]  # the pool's views, then held-out once (cached)
    assert calls[0] == 40 * FAST["batch_size"] + hold.shape[0] and fresh.teacher_views == 0
    assert res.agreement_after >= res.agreement_before + 0.2  # it still recovers
    assert res.config["teacher_views"] == 2


def test_teacher_views_declined_where_not_exact(pair):
    student, teacher, train, hold = pair
    loader = [(train[i : i + 32], torch.arange(i, i + 32)) for i in range(0, 96, 32)]
    res = distill(student, teacher, loader, hold, DistillConfig(steps=4, teacher_views=2), progress=False)
    assert res.teacher_views == 0 and "loader" in res.views_note and res.steps == 4
    res = distill(student, teacher, train, hold, DistillConfig(steps=4, teacher_views=2, features=1.0), progress=False)
    assert res.teacher_views == 0 and "feature matching" in res.views_note
    from compress.tasks import get_task

    def dense(seed: int) -> nn.Module:  # (N, 5, H, W) maps: a copy of every map is not pooled
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 5, 1)).eval()

    res = distill(dense(1), dense(0), train, hold, DistillConfig(steps=4, teacher_views=2), progress=False,
                  task=get_task("segment"))
    assert res.teacher_views == 0 and "not one (N, classes) tensor" in res.views_note and res.steps == 4


# ----------------------------------------------------------------------------- augmentation


def test_time_cap_shrinks_the_schedule_and_the_cosine_still_ends(pair, monkeypatch):
    import types

    from compress.recover import budget, loop

    student, teacher, train, hold = pair
    clock = [0.0]  # a fake clock: each student forward takes one second
    fake_time = types.SimpleNamespace(perf_counter=lambda: clock[0])
    monkeypatch.setattr(budget, "time", fake_time)  # the time cap's clock...
    monkeypatch.setattr(loop, "time", fake_time)  # ...and the run's
    hook = student.register_forward_pre_hook(lambda m, a: clock.__setitem__(0, clock[0] + 1.0))
    try:
        res = distill(student, teacher, train, hold, DistillConfig(**{**FAST, "steps": 1000, "eval_every": 1000,
                                                                       "max_minutes": 1.0}), progress=False)
    finally:
        hook.remove()
    assert res.planned_steps == 1000 and 50 <= res.steps <= 60 and res.stopped is None, res.steps  # 60 s fit ~58
    assert res.max_minutes == 1.0 and res.seconds <= 62
    assert res.history[-1]["step"] == res.steps and res.history[-1]["lr"] < 1e-9  # cosine reached zero there
    # a slow start (kernels warming up) first shrinks the schedule; later checks give the steps back
    clock[0], forwards = 0.0, [0]

    def slow_start(m, a):
        forwards[0] += 1
        clock[0] += 5.0 if forwards[0] <= 21 else 1.0

    hook = student.register_forward_pre_hook(slow_start)
    try:
        res = distill(student, teacher, train, hold, DistillConfig(**{**FAST, "steps": 1000, "eval_every": 10,
                                                                       "max_minutes": 3.0}), progress=False)
    finally:
        hook.remove()
    assert 60 < res.steps < 120 and res.seconds <= 182, res.steps  # the first estimate alone allowed ~35
    assert time_cap(DistillConfig()) == AUTO_MINUTES  # the automatic budget is capped...
    assert time_cap(DistillConfig(epochs=3)) is None  # ...an explicit one is not, unless asked
    assert time_cap(DistillConfig(max_minutes=float("inf"))) is None
    with pytest.raises(ValueError, match="max_minutes"):
        DistillConfig(max_minutes=0)


def test_cpu_precision_is_bf16_where_native_else_float32(pair):
    student, teacher, train, hold = pair
    res = distill(copy.deepcopy(student), teacher, train, hold, DistillConfig(**{**FAST, "steps": 2}), progress=False)
    assert res.precision == ("bf16" if cpu_bf16() else "fp32") and res.device == "cpu"
    off = DistillConfig(**{**FAST, "steps": 2, "amp": "off"})
    assert distill(copy.deepcopy(student), teacher, train, hold, off, progress=False).precision == "fp32"
    asked = DistillConfig(**{**FAST, "steps": 2, "amp": "bf16"})
    if cpu_bf16():
        assert distill(copy.deepcopy(student), teacher, train, hold, asked, progress=False).precision == "bf16"
    else:
        with pytest.raises(ValueError, match="slower than float32"):
            distill(copy.deepcopy(student), teacher, train, hold, asked, progress=False)


@pytest.mark.parametrize("kind", ["crop-flip", "rrc-flip", "none", "auto"])
def test_augment_shapes_and_determinism(kind):
    x = torch.randn(8, 3, 16, 16)
    a = BatchAugment(kind, cutmix=0.5, seed=3)
    b = BatchAugment(kind, cutmix=0.5, seed=3)
    outs_a, outs_b = [a(x) for _ in range(3)], [b(x) for _ in range(3)]
    for ya, yb in zip(outs_a, outs_b):
        assert ya.shape == x.shape and ya.dtype == x.dtype and torch.equal(ya, yb)
    if kind != "none":
        assert not torch.equal(outs_a[0], x) and not torch.equal(outs_a[0], outs_a[1])
    assert not torch.equal(BatchAugment(kind, cutmix=1.0, seed=4)(x), outs_a[0])


def test_crop_flip_moves_pixels_without_inventing_them():
    x = torch.arange(4 * 1 * 8 * 8, dtype=torch.float32).reshape(4, 1, 8, 8)
    y = random_crop_flip(x, torch.Generator().manual_seed(0), pad=1, pad_mode="zeros")
    for i in range(4):
        vals = set(y[i].flatten().tolist()) - {0.0}
        assert vals <= set(x[i].flatten().tolist())  # a shifted (maybe flipped) crop of its own image
        assert len(vals) >= 7 * 7 - 1
    same = random_crop_flip(x, torch.Generator().manual_seed(0), pad=0, flip=False)
    assert torch.equal(same, x)
    flipped = [torch.equal(random_crop_flip(x, torch.Generator().manual_seed(s), pad=0)[0], x[0].flip(-1))
               for s in range(10)]
    assert any(flipped) and not all(flipped)


def test_rrc_identity_and_cutmix_box():
    x = torch.randn(4, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    ident = random_resized_crop_flip(x, g, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    assert torch.allclose(ident, x, atol=1e-5)
    assert torch.equal(cutmix(x, g, 0.0), x)
    mixed = cutmix(x, torch.Generator().manual_seed(1), 1.0)
    changed = (mixed != x).any(1)  # (N, H, W) pixels taken from another image
    assert changed.any()
    rows, cols = changed.any(0).nonzero(as_tuple=True)
    box = (slice(int(rows.min()), int(rows.max()) + 1), slice(int(cols.min()), int(cols.max()) + 1))
    assert torch.allclose(mixed[:, :, box[0], box[1]].sum(0), x[:, :, box[0], box[1]].sum(0))  # a permutation
    assert torch.equal(mixed * ~changed[:, None], x * ~changed[:, None])  # nothing else changed
    assert resolve_kind("auto", 32) == "crop-flip" and resolve_kind("auto", 224) == "rrc-flip"
    with pytest.raises(ValueError, match="unknown augmentation"):
        BatchAugment("jitter")


def test_feature_matching_pairs_same_shape_stages_only_and_cleans_up(pair):
    from compress.recover.feature_match import FeatureMatch

    student, teacher, train, hold = pair
    assert FeatureMatch(student, teacher, hold[:2]).names == []  # width 6 vs 16: nothing matches
    twin = tiny_net(16, seed=5)
    fm = FeatureMatch(twin, teacher, hold[:2])
    assert fm.names == ["0", "1", "2", "3", "4", "5", "6"]  # 4-D outputs; Flatten and the head are not
    twin(hold[:4]), teacher(hold[:4])
    assert fm.loss().item() > 0
    fm.close()
    assert not any(m._forward_hooks for m in twin.modules())
    res = distill(twin, teacher, train, hold, DistillConfig(**{**FAST, "features": 1.0}), progress=False)
    assert res.stopped is None and res.agreement_after >= res.agreement_before
    assert not any(m._forward_hooks for m in list(twin.modules()) + list(teacher.modules()))
