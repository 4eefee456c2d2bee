"""The typed cut record (``compress.artifacts.cuts.Cut``): its JSON is the dict every earlier version wrote,
byte for byte, and a record that is not one is refused by name.

``fixtures/plan_main_633d35a.json`` is ``plan.json`` as main at 633d35a wrote it (dict cut records) for the
plan below: a functional layer's input dim (``consumes``), per-channel layers and bare parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compress.artifacts.cuts import Cut, cuts_from_json, cuts_to_json
from compress.errors import CheckpointError
from compress.prune.plan import plan_for_units
from tests.graph.helpers import groups_of
from tests.graph.test_functional import TimmLikeCNN, _build

FIXTURE = Path(__file__).parent / "fixtures" / "plan_main_633d35a.json"


def _plan():
    model, x = _build(TimmLikeCNN, 8)
    groups = groups_of(model, x, prune_stem=True)
    ci = next(i for i, s in enumerate(groups.slots) if s.consumes)
    units = [r for r in groups.prunable_units if any(i == ci for i, _ in groups.units[r].slots)][::2]
    units += [r for r in groups.prunable_units if r not in units][::3]
    return plan_for_units(groups, sorted(units))


def test_plan_json_is_byte_identical_to_the_dict_records_main_wrote():
    plan = _plan()
    assert all(isinstance(c, Cut) for c in plan.cuts) and any(c.consumes for c in plan.cuts)
    written = json.dumps({"removed_units": plan.removed, "cuts": cuts_to_json(plan.cuts), "widths": plan.widths},
                         default=list)
    assert written == FIXTURE.read_text()


def test_records_read_back_equal_and_write_the_same_bytes():
    old = json.loads(FIXTURE.read_text())["cuts"]
    cuts = cuts_from_json(old)
    assert cuts == _plan().cuts
    assert json.dumps(cuts_to_json(cuts), indent=1) == json.dumps(old, indent=1)  # compress.json's layout
    assert [list(c.to_json()) for c in cuts if not c.consumes][0] == ["name", "role", "dim", "size", "keep"]


def test_removed_and_composition():
    first = Cut("conv", "out", 0, 8, (0, 2, 3, 5, 7))
    assert first.removed == [1, 4, 6]
    assert first.then(Cut("conv", "out", 0, 5, (1, 4))) == Cut("conv", "out", 0, 8, (2, 7))
    with pytest.raises(ValueError, match="does not follow"):
        first.then(Cut("conv", "out", 0, 8, (1,)))


@pytest.mark.parametrize("bad", [
    {"name": "a", "role": "out", "dim": 0, "size": 4},  # no keep
    {"name": "a", "role": "out", "dim": 0, "size": 4, "keep": [0], "extra": 1},
    {"name": "a", "role": "out", "dim": 0, "size": 4, "keep": [4]},  # beyond the width
    {"name": "a", "role": "out", "dim": 0, "size": 4, "keep": [2, 1]},  # not ascending
    {"name": "a", "role": "out", "dim": "0", "size": 4, "keep": [1]},
    ["a", "out", 0, 4, [1]],
])
def test_a_malformed_record_is_refused(bad):
    with pytest.raises(CheckpointError, match="malformed cut record"):
        cuts_from_json([bad])


def test_surgery_takes_records_only():
    import torch.nn as nn

    from compress.prune.surgery import apply_cuts

    with pytest.raises(TypeError, match="a cut record is a compress.artifacts.cuts.Cut"):
        apply_cuts(nn.Conv2d(3, 4, 1), [{"name": "", "role": "out", "dim": 0, "size": 4, "keep": [0]}])
