from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from compress.export.latency import LatencyStats, ort_runner, summarize, time_interleaved, torch_runner


def test_summarize_known_samples():
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], batch=4)
    assert isinstance(s, LatencyStats)
    assert s.mean == pytest.approx(5.5) and s.p50 == pytest.approx(5.5)
    assert s.std == pytest.approx(np.std(np.arange(1, 11), ddof=1))
    assert s.p90 == pytest.approx(9.1) and s.p99 == pytest.approx(9.91) and s.min == 1.0
    assert s.throughput == pytest.approx(4 * 1000 / 5.5) and s.iters == 10 and s.batch == 4
    one = summarize([2.0])
    assert one.std == 0.0 and one.p99 == 2.0 and one.throughput == pytest.approx(500.0)
    with pytest.raises(ValueError):
        summarize([])


def test_interleaving_rotates_and_counts():
    calls: list[str] = []
    runners = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    stats = time_interleaved(runners, warmup=2, iters=4, batch=8)
    warm, timed = calls[:6], calls[6:]
    assert warm == list("abcabc")
    assert timed == list("abc" "bca" "cab" "abc")  # one of each per round, start rotating
    assert list(stats) == ["a", "b", "c"] and all(s.iters == 4 and s.batch == 8 for s in stats.values())


def test_fake_clock_gives_exact_latencies():
    ticks = iter(range(0, 10**9, 1_000_000))  # every clock read advances 1 ms
    durations = {"fast": 0, "slow": 2}

    def clock():
        return next(ticks)

    def make(extra):
        def run():
            for _ in range(extra):
                clock()  # the slow runner burns two more clock reads: 3 ms per call
        return run

    stats = time_interleaved({k: make(v) for k, v in durations.items()}, warmup=0, iters=5, clock=clock)
    assert stats["fast"].p50 == pytest.approx(1.0) and stats["slow"].p50 == pytest.approx(3.0)
    assert stats["slow"].std == 0.0


def test_min_seconds_extends_and_threads_restored():
    before = torch.get_num_threads()
    seen = []
    stats = time_interleaved({"t": lambda: seen.append(torch.get_num_threads())}, warmup=0, iters=1,
                             min_seconds=0.02, threads=1)
    assert stats["t"].iters > 1 and set(seen) == {1}
    assert torch.get_num_threads() == before


def test_real_runners(tiny_onnx, tiny_model, images):
    x = images[:4]
    runners = {"torch": torch_runner(tiny_model, x), "ort": ort_runner(tiny_onnx.path, x, threads=1)}
    stats = time_interleaved(runners, warmup=2, iters=10, batch=4, threads=1)
    for s in stats.values():
        assert 0 < s.min <= s.p50 <= s.p90 <= s.p99 and math.isfinite(s.throughput) and s.throughput > 0


def _preempting_runners(pattern: dict[str, str]):
    """Runners on a fake clock (1 ms per call) and a fake switch counter: in ``pattern[name]`` (cycled), 'p' marks a
    call that is preempted (the counter moves and the call waits 10 ms more), '.' an undisturbed one."""
    state = {"ns": 0, "switches": 0, "calls": {n: 0 for n in pattern}}

    def make(name):
        def run():
            i = state["calls"][name]
            state["calls"][name] += 1
            state["ns"] += 1_000_000
            if pattern[name][i % len(pattern[name])] == "p":
                state["switches"] += 1
                state["ns"] += 10_000_000
        return run

    return {n: make(n) for n in pattern}, (lambda: state["ns"]), (lambda: state["switches"])


def test_preempted_calls_are_set_aside():
    # "long" is preempted in 3 of 4 calls: the median of all its calls is the wait, not the model
    runners, clock, switches = _preempting_runners({"long": "ppp.", "short": "p..."})
    stats = time_interleaved(runners, warmup=0, iters=40, clock=clock, switches=switches)
    long, short = stats["long"], stats["short"]
    assert long.p50_all == pytest.approx(11.0) and short.p50_all == pytest.approx(1.0)
    assert long.p50 == pytest.approx(1.0) and long.p90 == pytest.approx(1.0) and short.p50 == pytest.approx(1.0)
    assert long.preempted == pytest.approx(0.75) and short.preempted == pytest.approx(0.25)
    assert (long.iters, long.kept, short.kept) == (40, 10, 30)


def test_all_calls_kept_when_one_runner_has_too_few_undisturbed():
    # "busy" keeps 1 call in 40 (under MIN_KEPT_SHARE): both runners' figures are then over all calls alike
    runners, clock, switches = _preempting_runners({"busy": "p" * 39 + ".", "calm": "."})
    stats = time_interleaved(runners, warmup=0, iters=40, clock=clock, switches=switches)
    assert stats["busy"].kept == 40 and stats["calm"].kept == 40
    assert stats["busy"].p50 == pytest.approx(11.0) and stats["busy"].preempted == pytest.approx(0.975)


def test_min_seconds_extends_until_enough_undisturbed_calls():
    # 2 calls in 10 undisturbed: after iters and min_seconds the rounds go on until MIN_KEPT_TARGET of them
    from compress.export.latency import MIN_KEPT_TARGET

    runners, clock, switches = _preempting_runners({"x": "pppppppp.."})
    stats = time_interleaved(runners, warmup=0, iters=10, min_seconds=0.001, clock=clock, switches=switches)
    assert stats["x"].kept >= MIN_KEPT_TARGET and stats["x"].p50 == pytest.approx(1.0)


def test_preemption_notes():
    from compress.export.latency import preemption_notes

    quiet = {"latency_ms": {"preempted": 0.0, "kept": 50, "iters": 50}}
    assert preemption_notes([quiet, quiet]) == []
    filtered = {"latency_ms": {"preempted": 0.72, "kept": 14, "iters": 50}}
    waits = {"latency_ms": {"preempted": 1.0, "kept": 50, "iters": 50}}
    (line,) = preemption_notes([quiet, filtered, waits])
    assert "100% of the timed calls in 2 of 3 rows" in line and "72%" in line
    assert "1 rows' latencies are over the calls not preempted" in line and "1 rows (too few" in line
    (line,) = preemption_notes([waits])
    assert "include the waits; rerun" in line
