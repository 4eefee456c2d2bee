from __future__ import annotations

import pytest
import torch

from tests.export.factories import tiny


@pytest.fixture(scope="session")
def images() -> torch.Tensor:
    """64 deterministic 3x16x16 inputs."""
    return torch.randn(64, 3, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="session")
def tiny_model():
    return tiny(0)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, tiny_model, images):
    """The tiny model exported once (dynamo exporter) for the whole session."""
    from compress.export.onnx import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return export_onnx(tiny_model, images[:2], path)
