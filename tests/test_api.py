"""The Python API (compress.api): the sweep is callable without the CLI and keeps the CLI's output policy."""

from __future__ import annotations

import pytest

import compress
from compress.errors import UsageError


def test_api_sweep_refuses_an_output_inside_its_inputs_before_any_work(tiny_assets):
    with pytest.raises(UsageError, match="calib|input"):
        compress.sweep(tiny_assets / "ckpt.pt", tiny_assets / "calib", ratios=(0.3,), out=tiny_assets / "calib" / "x",
                       arch="digits", quiet=True)
    assert not (tiny_assets / "calib" / "x").exists()
