"""The CPUs as Linux describes them, no torch import: ``cpuinfo`` fields (model, flags) and how busy
other work keeps them right now (a short /proc/stat sample).

The busy share is sampled before anything starts OpenMP threads (``compress.cli.openmp``) and before
timing (``export.bench``): this process sleeps while it samples, so the busy time it sees is other processes'.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

PROC_CPUINFO = Path("/proc/cpuinfo")
PROC_STAT = Path("/proc/stat")
SAMPLE_SECONDS = 0.1
BUSY = 0.5  # from this share of all CPUs kept busy by other processes, spinning OpenMP threads hurt


def cpuinfo(key: str, path: str | Path = PROC_CPUINFO) -> str | None:
    """The value of the first ``key`` line of /proc/cpuinfo (e.g. ``model name``, ``flags``); None if absent."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == key:
            return value.strip()
    return None


def _cpu_times(stat: Path) -> tuple[int, int] | None:
    """(idle, total) jiffies summed over all CPUs, or None where /proc/stat is unreadable."""
    try:
        fields = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:] if v.isdigit()]
    if len(values) < 4:
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return idle, sum(values[:8])  # guest time is already counted in user time


def others_busy(seconds: float = SAMPLE_SECONDS, stat: Path = PROC_STAT) -> float | None:
    """Fraction of all CPUs kept busy by other processes over ``seconds`` (0..1); None off Linux."""
    first = _cpu_times(stat)
    if first is None:
        return None
    time.sleep(seconds)
    second = _cpu_times(stat)
    if second is None:
        return None
    total = second[1] - first[1]
    if total <= 0:
        return 0.0
    return min(1.0, max(0.0, 1.0 - (second[0] - first[0]) / total))


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    return cpuinfo("model name") or platform.processor() or platform.machine()
