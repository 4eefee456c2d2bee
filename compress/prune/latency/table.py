"""The on-disk latency table: layer timings and whole-network measurements, per model and runtime.

One JSON file per (network, timer) pair under the cache folder — ``$COMPRESS_CACHE_DIR`` or
``~/.cache/compress`` — in ``latency/``, named by a hash of the network's varying layers and of
everything the timings depend on (:meth:`export.layer_timing.Timer.describe`: backend and its
version, batch, threads, device, CPU model, core count). A different machine, backend, batch or
thread count therefore never reads another's figures; a file whose recorded description does not
match (or that cannot be read) is measured again and replaced. Files are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

from compress.util.atomic import write_text

VERSION = 4  # 2: in-context width probes (compress.prune.latency.probe); 3: network points keep their widths;
# 4: timings set preempted calls aside (export.latency)


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("COMPRESS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "compress"


class LatencyTable:
    """Layer entries ``{key: ms}`` and network points ``[{"widths": kept per slot, "ms": measured, "role"}]``."""

    def __init__(self, path: Path, header: dict):
        self.path = path
        self.header = header
        self.entries: dict[str, float] = {}
        self.networks: list[dict] = []
        self.probes: dict[str, dict[str, float]] = {}  # class -> {width: measured network saving}
        self.reused = False  # read from an earlier run
        self.stale_reason: str | None = None  # why an existing file was not used
        self.measured = 0  # layer entries timed by this run

    @classmethod
    def open(cls, model: str, timer_info: dict, folder: str | os.PathLike | None = None) -> "LatencyTable":
        header = {"version": VERSION, "model": model, "timer": timer_info}
        digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:20]
        table = cls(cache_dir(folder) / "latency" / f"{digest}.json", header)
        if table.path.is_file():
            try:
                data = json.loads(table.path.read_text())
                if data.get("header") != header:
                    table.stale_reason = "recorded for another machine, runtime or model"
                else:
                    table.entries = {k: float(v) for k, v in data["entries"].items()}
                    table.networks = list(data.get("networks", []))
                    table.probes = {k: {w: float(v) for w, v in d.items()} for k, d in data.get("probes", {}).items()}
                    table.reused = True
            except (OSError, ValueError, KeyError, TypeError) as err:
                table.stale_reason = f"unreadable ({err.__class__.__name__})"
        return table

    @staticmethod
    def entry_key(spec_key: str, cin: int, cout: int) -> str:
        return f"{spec_key}|{cin}|{cout}"

    def get(self, spec, cin: int, cout: int, measure: Callable[[], float]) -> float:
        key = self.entry_key(spec.key(), cin, cout)
        if key not in self.entries:
            self.entries[key] = float(measure())
            self.measured += 1
        return self.entries[key]

    def lookup(self, spec, cin: int, cout: int) -> float:
        return self.entries[self.entry_key(spec.key(), cin, cout)]

    def add_network(self, widths, ms: float, role: str) -> None:
        self.networks.append({"widths": [int(w) for w in widths], "ms": float(ms), "role": role})

    def points(self, *roles: str) -> list[dict]:
        return [p for p in self.networks if p["role"] in roles]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text(self.path, json.dumps({"header": self.header, "entries": self.entries,
                                          "networks": self.networks, "probes": self.probes}, indent=1))
