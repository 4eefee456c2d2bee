"""--schedule twostep (compress.prune.schedules.twostep), the worked example of a pruning schedule: one file and
its registry line. Half of the way before recovery, the rest at its middle step, both proved; the same widths as
the one-shot plan and a folder that reloads like one."""

from __future__ import annotations

import json

import torch

import compress
from compress.prune.plan import PrunePolicy
from compress.prune.schedules import SCHEDULES
from compress.recover import DistillConfig
from compress.run.pipeline import PruneConfig, run_prune
from tests.cli_helpers import run_cli


def _config(assets, out, schedule, steps=16):
    return PruneConfig(checkpoint=str(assets / "ckpt.pt"), calib=str(assets / "calib"), out=str(out),
                       load={"arch": "digits"}, policy=PrunePolicy(ratio=0.5, round_to=1), schedule=schedule,
                       distill=DistillConfig(steps=steps, batch_size=8, eval_every=4), progress=False)


def test_twostep_cuts_half_then_the_rest_at_the_middle_step_and_ends_at_the_one_shot_widths(tiny_assets, tmp_path):
    lines = []
    say = compress.run.context.Lines(info=lines.append, warn=lambda m: lines.append("warning: " + m))
    oneshot = run_prune(_config(tiny_assets, tmp_path / "one", "oneshot", steps=2), say)
    two = run_prune(_config(tiny_assets, tmp_path / "two", "twostep"), say)
    assert two.widths == oneshot.widths
    s = two.summary
    assert (s.macs_after, s.params_after) == (oneshot.summary.macs_after, oneshot.summary.params_after)
    stages = s.recovery.recover_stages
    assert [(g["stage"], g["step"], g["share"]) for g in stages] == [(1, 0, 0.5), (2, 8, 1.0)]
    assert all(g["layers_cut"] and g["proof_max_diff"] < 1e-4 for g in stages)
    assert oneshot.summary.macs_before > stages[0]["macs"] > stages[1]["macs"] == s.macs_after  # two real cuts
    assert sum(1 for line in lines if line.startswith("twostep: stage") and "proved" in line) == 2
    record = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert record["recover_schedule"] == "twostep" and len(record["recover_stages"]) == 2
    loaded = compress.load(tmp_path / "two")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model.eval()(x), two.model.eval()(x))


def test_the_cli_offers_it_from_the_registry_and_it_needs_recovery(tiny_assets, tmp_path, capsys):
    assert SCHEDULES["twostep"].during_recovery
    code, _, err = run_cli(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                            "--schedule", "twostep", "--no-recover", "-o", tmp_path / "y"], capsys)
    assert code == 2 and "--schedule twostep cuts during recovery" in err and not (tmp_path / "y").exists()
