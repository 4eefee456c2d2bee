"""The location of the shared CIFAR data (the image-writing helpers are in ``images.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
CIFAR = SHARED / "data" / "cifar10"


@pytest.fixture
def cifar() -> Path:
    if not CIFAR.is_dir():
        pytest.skip(f"shared data not found at {CIFAR}")
    return CIFAR
