"""Options of a latency target: which runtime, at which batch and thread count."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from compress.errors import UsageError
from compress.export.runtimes import latency_backends

BACKENDS = latency_backends()  # the runtime plugins a latency table can be measured on
UNITS = {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3}


@dataclass(frozen=True)
class LatencyConfig:
    backend: str = "onnxruntime"
    batch: int = 1
    threads: int | None = None  # CPU threads of the runtime (None: all cores)
    device: str = "cpu"  # torch backend: cpu or cuda[:N]
    cache_dir: str | None = None  # None: $COMPRESS_CACHE_DIR or ~/.cache/compress
    tolerance: float = 0.05  # stop iterating once measured latency is this close to the target
    attempts: int = 4  # select -> measure rounds at most

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise UsageError(f"unknown --backend {self.backend!r}", f"choose one of {', '.join(BACKENDS)}")
        if self.batch < 1:
            raise UsageError(f"--batch must be at least 1, got {self.batch}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {self.threads}")

    def to_dict(self) -> dict:
        return asdict(self)


def parse_latency(text: str) -> float:
    """'2.5ms', '800us', '0.01s' or a bare number of milliseconds -> milliseconds."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|us|µs|s)?\s*", str(text))
    if not match:
        raise UsageError(f"cannot read latency {text!r}", "write it like 2.5ms, 800us or 0.01s")
    value = float(match.group(1)) * UNITS[match.group(2) or "ms"]
    if value <= 0:
        raise UsageError(f"latency target must be positive, got {text!r}")
    return value
