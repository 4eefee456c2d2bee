"""What a loaded model is and where it came from: enough to rebuild it later."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn

from compress.calibrate.preprocess import Preprocess


@dataclass(frozen=True)
class ModelSpec:
    """How to rebuild the *original* (unpruned) model.

    kind: ``state_dict`` (arch factory + weights), ``pickle`` (a whole pickled module, needs
    trust), or ``export`` (a ``torch.export`` ``.pt2`` program).
    """

    kind: str
    checkpoint: str  # absolute path of the file the weights came from
    arch: str | None = None  # e.g. "torchvision:resnet18", "compress.archs.cifar_resnet:resnet20"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int, int] | None = None  # (C, H, W) the model is run at
    preprocess: dict[str, Any] | None = None  # calibrate.preprocess.Preprocess.to_dict()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size) if self.input_size else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model-spec keys: {sorted(unknown)}")
        d = dict(d)
        if d.get("input_size") is not None:
            d["input_size"] = tuple(int(v) for v in d["input_size"])
        return cls(**d)


@dataclass
class LoadedModel:
    """A model ready to use (eval mode, on the CPU) plus its provenance."""

    model: nn.Module
    spec: ModelSpec
    path: Path  # what the user named: a checkpoint file or a compress output folder
    size_bytes: int  # bytes on disk of what was loaded
    pruned: bool = False  # True for a compress output folder
    record: dict[str, Any] | None = None  # for pruned models: the saved cut record

    @property
    def recorded_calib(self) -> str | None:
        """For a compress output folder: the calibration folder its run read (``config.calib`` of its record)."""
        return ((self.record or {}).get("config") or {}).get("calib")

    @property
    def recorded_round_to(self) -> int | None:
        """For a compress output folder: the width multiple its run rounded to (``config.policy.round_to``)."""
        return (((self.record or {}).get("config") or {}).get("policy") or {}).get("round_to")

    def preprocess(self) -> Preprocess:
        """The preprocessing the model expects (recorded in ``spec.preprocess``)."""
        return Preprocess.from_dict(self.spec.preprocess)
