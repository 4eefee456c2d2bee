from __future__ import annotations

import pytest

from compress.export import cpu_load
from compress.export.cpu_load import others_busy


def _stat(user: int, idle: int, iowait: int = 0) -> str:
    # cpu  user nice system idle iowait irq softirq steal guest guest_nice
    return f"cpu  {user} 0 0 {idle} {iowait} 0 0 0 0 0\ncpu0 {user} 0 0 {idle} {iowait} 0 0 0 0 0\n"


def _sampled(tmp_path, monkeypatch, first: str, second: str) -> float | None:
    stat = tmp_path / "stat"
    stat.write_text(first)
    monkeypatch.setattr(cpu_load.time, "sleep", lambda _s: stat.write_text(second))
    return others_busy(0.1, stat)


def test_busy_share_of_all_cpus(tmp_path, monkeypatch):
    assert _sampled(tmp_path, monkeypatch, _stat(100, 100), _stat(250, 150)) == pytest.approx(0.75)
    assert _sampled(tmp_path, monkeypatch, _stat(100, 100), _stat(100, 300)) == 0.0
    # waiting for I/O counts as idle
    assert _sampled(tmp_path, monkeypatch, _stat(100, 100, 50), _stat(150, 150, 100)) == pytest.approx(1 / 3)


def test_no_time_passed_or_unreadable(tmp_path, monkeypatch):
    assert _sampled(tmp_path, monkeypatch, _stat(100, 100), _stat(100, 100)) == 0.0
    assert _sampled(tmp_path, monkeypatch, "intr 1 2 3\n", _stat(1, 1)) is None
    assert others_busy(0.0, tmp_path / "missing") is None


def test_real_proc_stat_gives_a_share():
    busy = others_busy(0.05)
    if busy is None:
        pytest.skip("no /proc/stat on this system")
    assert 0.0 <= busy <= 1.0


def test_cpuinfo_fields(tmp_path):
    from compress.export.cpu_load import cpuinfo

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nModel Name\t: AMD EPYC\nflags\t\t: fpu avx2\n\nprocessor\t: 1\nflags\t\t: other\n")
    assert cpuinfo("model name", info) == "AMD EPYC"
    assert cpuinfo("flags", info) == "fpu avx2"  # the first CPU's
    assert cpuinfo("bogomips", info) is None
    assert cpuinfo("flags", tmp_path / "missing") is None
