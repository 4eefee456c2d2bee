"""--schedule gradual (compress.prune.schedules.gradual): the one-shot plan's widths reached in proved stages during
distillation, a folder that reloads like a one-shot one, and the optimizer state carried across a cut."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

import compress
from compress.artifacts.cuts import Cut
from compress.errors import UsageError
from compress.graph.analysis import analyze
from compress.graph.groups import build_groups
from compress.graph.trace import trace
from compress.prune.plan import select_widths
from compress.prune.surgery import apply_cuts
from compress.recover.reshape import cut_student
from compress.prune.schedules.gradual import stage_share, stage_step, stage_widths
from compress.run.pipeline import PruneConfig, run_prune
from compress.prune.plan import PrunePolicy
from compress.recover import DistillConfig
from tests.cli_helpers import run_cli
from tests.distill_data import tiny_net


def test_stage_widths_follow_the_cubic_and_end_at_the_target():
    widths = {"a:out": (64, 32), "b:out": (16, 8), "c:chan": (10, 10)}
    shares = [stage_share(k, 4) for k in (1, 2, 3, 4)]
    assert shares == sorted(shares) and shares[-1] == 1.0 and 0.5 < shares[0] < 0.6
    first, last = stage_widths(widths, shares[0], 8), stage_widths(widths, 1.0, 8)
    assert first == {"a:out": 48, "b:out": 8, "c:chan": 10}  # 45.5 -> 48; 11.4 -> 8 (nearest multiple of 8)
    assert last == {"a:out": 32, "b:out": 8, "c:chan": 10}
    assert [stage_step(k, 4, 800) for k in (1, 2, 3, 4)] == [0, 100, 200, 300]  # over the first half


def test_select_widths_takes_the_lowest_scored_units_down_to_the_widths():
    model = tiny_net(16, seed=0).eval()
    groups = build_groups(analyze(trace(model, torch.randn(2, 3, 12, 12))))
    slot = next(s for s in groups.slots if s.name == "0" and s.role == "out")
    scores = {r: float(i) for i, r in enumerate(sorted(groups.prunable_units))}
    plan = select_widths(groups, scores, {"0:out": 8})
    assert plan.widths["0:out"] == (len(slot.ids), 8)
    cut = next(c for c in plan.cuts if c.name == "0" and c.role == "out")
    assert len(cut.keep) == 8


def test_cut_student_carries_momentum_over_to_the_cut_parameters():
    torch.manual_seed(0)
    model = tiny_net(16, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 3, 12, 12)).square().mean().backward()
        opt.step()
    before = {n: opt.state[p]["momentum_buffer"].clone() for n, p in model.named_parameters()}
    keep = [0, 2, 3, 5, 7, 8, 11, 12]
    cuts = [Cut("0", "out", 0, 16, tuple(keep)), Cut("1", "chan", 0, 16, tuple(keep)), Cut("3", "in", 1, 16, tuple(keep))]
    cut_student(model, opt, lambda m: apply_cuts(m, cuts), channels_last=False)
    params = dict(model.named_parameters())
    assert params["0.weight"].shape[0] == 8 and {id(p) for g in opt.param_groups for p in g["params"]} == \
        {id(p) for p in params.values()}
    assert torch.equal(opt.state[params["0.weight"]]["momentum_buffer"], before["0.weight"][keep])
    assert torch.equal(opt.state[params["1.bias"]]["momentum_buffer"], before["1.bias"][keep])
    assert torch.equal(opt.state[params["3.weight"]]["momentum_buffer"], before["3.weight"][:, keep])
    assert torch.equal(opt.state[params["8.weight"]]["momentum_buffer"], before["8.weight"])  # an uncut layer's as it was
    opt.zero_grad()
    model(torch.randn(4, 3, 12, 12)).square().mean().backward()
    opt.step()  # the optimizer runs on the new shapes


def _config(assets, out, schedule, steps=16, **kw):
    return PruneConfig(checkpoint=str(assets / "ckpt.pt"), calib=str(assets / "calib"), out=str(out),
                       load={"arch": "digits"}, policy=PrunePolicy(ratio=0.5), schedule=schedule,
                       distill=DistillConfig(steps=steps, batch_size=8, eval_every=4), progress=False, **kw)


def test_gradual_reaches_the_one_shot_widths_every_stage_proved_and_the_folder_reloads(tiny_assets, tmp_path):
    lines = []
    say = compress.run.context.Lines(info=lines.append, warn=lambda m: lines.append("warning: " + m))
    oneshot = run_prune(_config(tiny_assets, tmp_path / "one", "oneshot", steps=2), say)
    gradual = run_prune(_config(tiny_assets, tmp_path / "grad", "gradual"), say)
    assert gradual.widths == oneshot.widths  # the same architecture: widths, MACs, parameters
    s = gradual.summary
    assert (s.macs_after, s.params_after) == (oneshot.summary.macs_after, oneshot.summary.params_after)
    stages = s.recovery.recover_stages
    assert [g["stage"] for g in stages] == [1, 2, 3, 4] and stages[0]["step"] == 0
    assert all(g["proof_max_diff"] < 1e-4 for g in stages) and stages[-1]["macs"] == s.macs_after
    assert [g["step"] for g in stages] == sorted(g["step"] for g in stages)
    assert all("agreement" in g for g in stages if g["layers_cut"])
    assert sum(1 for line in lines if line.startswith("gradual: stage") and "proved" in line) == 4
    record = json.loads((tmp_path / "grad" / "summary.json").read_text())
    assert record["recover_schedule"] == "gradual" and len(record["recover_stages"]) == 4
    assert "recover_schedule" not in json.loads((tmp_path / "one" / "summary.json").read_text())
    plan = json.loads((tmp_path / "grad" / "plan.json").read_text())
    one_plan = json.loads((tmp_path / "one" / "plan.json").read_text())
    assert plan["removed_units"] and plan["widths"] == one_plan["widths"]
    assert {(c["name"], c["role"]) for c in plan["cuts"]} == {(c["name"], c["role"]) for c in one_plan["cuts"]}
    loaded = compress.load(tmp_path / "grad")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model.eval()(x), gradual.model.eval()(x))


def test_gradual_with_too_few_steps_cuts_the_rest_after_the_run_and_says_so(tiny_assets, tmp_path):
    warnings = []
    say = compress.run.context.Lines(info=lambda m: None, warn=warnings.append)
    result = run_prune(_config(tiny_assets, tmp_path / "short", "gradual", steps=1), say)
    oneshot = run_prune(_config(tiny_assets, tmp_path / "one", "oneshot", steps=1), say)
    assert result.widths == oneshot.widths
    assert any("was not reached in 1 steps" in w for w in warnings)
    assert len(result.summary.recovery.recover_stages) == 4


def test_gradual_needs_recovery(tiny_assets, tmp_path, capsys):
    with pytest.raises(UsageError, match="gradual"):
        _config(tiny_assets, tmp_path / "x", "gradual", recover=False)
    with pytest.raises(UsageError, match="schedule"):
        _config(tiny_assets, tmp_path / "x", "sometimes")
    with pytest.raises(UsageError, match="feature matching"):
        PruneConfig(checkpoint="c", calib="d", policy=PrunePolicy(ratio=0.5), schedule="gradual",
                    distill=DistillConfig(features=1.0))
    code, _, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                            "--schedule", "gradual", "--no-recover", "-o", tmp_path / "y"], capsys)
    assert code == 2 and "--schedule gradual" in err and not (tmp_path / "y").exists()
