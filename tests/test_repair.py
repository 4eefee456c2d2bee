"""The least-squares repair after the cut (compress.recover.repair, stages.repair): on a tiny trained net it
brings the cut model's outputs closer to the original's, it is refused (weights untouched) where it does not
help, and it is in summary.json and the prune table."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn as nn

from compress.artifacts.summary import RunSummary
from compress.prune.plan import PrunePolicy
from compress.recover import repair_cut
from compress.run.pipeline import QUIET, PruneConfig, prune_model
from tests.distill_data import images, tiny_net


def _labels(x: torch.Tensor) -> torch.Tensor:
    """Five classes from colour and layout: something a small conv net learns in a hundred steps."""
    colour = x.mean((2, 3))
    left_right = (x[..., :6].mean((1, 2, 3)) > x[..., 6:].mean((1, 2, 3))).long()
    return torch.where(colour[:, 0] > colour[:, 1], colour.argmax(1), 3 + left_right)


@pytest.fixture(scope="module")
def trained():
    """(a trained 16-wide net, its training images, fresh images to judge on)."""
    net, x = tiny_net(16, seed=0), images(512, seed=0)
    y = _labels(x)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    net.train()
    for step in range(100):
        i = torch.randint(0, 512, (64,), generator=torch.Generator().manual_seed(step))
        loss = nn.functional.cross_entropy(net(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    fresh = images(256, seed=5)
    with torch.no_grad():
        assert (net(fresh).argmax(1) == _labels(fresh)).float().mean() > 0.6  # it learned
    return net, x, fresh


def _prune(net, x, **options):
    config = PruneConfig(checkpoint="<in memory>", calib="<in memory>", policy=PrunePolicy(ratio=0.5, round_to=1),
                         recover=False, progress=False, **options)
    return prune_model(copy.deepcopy(net), x, config=config, reporter=QUIET)


def _error(model, original, x) -> float:
    with torch.no_grad():
        return float((model(x) - original(x)).pow(2).mean())


def test_the_repair_brings_the_cut_nets_outputs_back_toward_the_originals(trained):
    net, x, fresh = trained
    cut = _prune(net, x, repair=False, recalibrate_bn=False)
    repaired = _prune(net, x, repair=True, recalibrate_bn=False)
    assert cut.summary.repair is None and cut.summary.widths == repaired.summary.widths  # the same cut
    rep = repaired.summary.repair
    assert rep.repair_kept and rep.repair_layers >= 1
    assert rep.repair_agreement_after >= rep.repair_agreement_before
    # on images neither the fit nor its held-out check saw: the output error falls by more than half
    assert _error(repaired.model, net, fresh) < 0.5 * _error(cut.model, net, fresh)


def test_the_repair_is_refused_and_the_weights_untouched_where_it_does_not_help(trained):
    net, x, fresh = trained
    cut = _prune(net, x, repair=False, recalibrate_bn=False).model
    before = copy.deepcopy(cut.state_dict())
    keep_out = {"0": tuple(range(8))}  # what the cut above kept does not matter: every refit is refused
    # one image repeated: the fit sees one input and cannot generalise to the held-out images
    result = repair_cut(cut, net, x[:1].repeat(64, 1, 1, 1), fresh, keep_out=keep_out)
    assert not result.kept and result.refused and not result.layers
    assert all(torch.equal(before[k], v) for k, v in cut.state_dict().items())
    # an uncut copy has no layer that lost inputs: nothing to refit
    same = copy.deepcopy(net)
    nothing = repair_cut(same, net, x, fresh, keep_out={})
    assert not nothing.kept and not nothing.layers and not nothing.refused


def test_the_repair_is_in_summary_json_and_the_prune_table(tiny_assets, tmp_path, capsys):
    from tests.cli_helpers import run_cli

    out = tmp_path / "out"
    code, text, err = run_cli(["prune", str(tiny_assets / "ckpt.pt"), "--arch", "digits", "--calib",
                               str(tiny_assets / "calib"), "--eval", str(tiny_assets / "eval"), "--ratio", "0.4",
                               "--round-to", "1", "--no-recover", "-o", str(out), "--no-progress"], capsys)
    assert code == 0, err
    written = json.loads((out / "summary.json").read_text())
    for key in ("repair_agreement_before", "repair_kept", "repair_layers", "repair_refused", "repair_images",
                "repair_seconds", "repair_note"):
        assert key in written
    assert written["repair_images"] > 0
    assert ("top1_repaired" in written) == written["repair_kept"]
    assert RunSummary.from_json(written).to_json() == written
    assert "repair" in text  # the row of the summary table (its label wraps on a narrow terminal)
    code, text, err = run_cli(["prune", str(tiny_assets / "ckpt.pt"), "--arch", "digits", "--calib",
                          str(tiny_assets / "calib"), "--ratio", "0.4", "--no-recover", "--no-repair", "-o",
                               str(tmp_path / "off"), "--no-progress"], capsys)
    assert code == 0, err
    assert not any(k.startswith("repair_") for k in json.loads((tmp_path / "off" / "summary.json").read_text()))


def test_the_whole_repair_is_judged_by_held_out_kl_even_without_per_layer_refusal(trained):
    net, x, fresh = trained
    cut = _prune(net, x, repair=False, recalibrate_bn=False).model
    before = copy.deepcopy(cut.state_dict())
    keep_out = {"0": tuple(range(8))}
    # every layer refitted to one repeated image (no per-layer check, one fixed ridge): the held-out KL rises
    bad = repair_cut(cut, net, x[:1].repeat(64, 1, 1, 1), fresh, keep_out=keep_out, layer_check=False,
                     ridge_steps=1, ridge=0.03)
    assert bad.layers and not bad.refused and bad.kl_after > bad.kl_before and not bad.kept
    assert all(torch.equal(before[k], v) for k, v in cut.state_dict().items())
    # the same settings on real calibration images: kept, by KL
    good = repair_cut(cut, net, x, fresh, keep_out=keep_out, layer_check=False, ridge_steps=1, ridge=0.03)
    assert good.kept and good.kl_after < good.kl_before
