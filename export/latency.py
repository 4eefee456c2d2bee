"""Latency: summary statistics and interleaved timing of several runners.

Timing design (for a noisy shared 2-core machine):

* Runners are timed **interleaved**: one call of each per round, the starting runner rotating
  every round (a b | b a | a b ...), so slow drifts (thermal, a neighbour's job) hit all alike and
  no runner always follows the same one.
* Warm-up calls first (allocator, oneDNN/MLAS kernel selection, lazy init), then at least
  ``iters`` timed rounds and, with ``min_seconds``, at least that much wall time.
* The **median** (p50) is the headline figure: one preempted call moves the mean, not the median.
  Throughput is ``batch / p50``.
* **Preempted calls are set aside.** The process's involuntary context switches (``getrusage``, all
  its threads) are read around every call, outside the timed region; a call during which one of its
  threads was switched out waited for another process, not for the model. When every runner keeps
  enough undisturbed calls (at least ``MIN_KEPT`` and ``MIN_KEPT_SHARE`` of its calls) the statistics
  are over those alone, else over all calls; ``preempted`` (the share set aside) and ``p50_all`` are
  recorded either way. Why: on shared cores the median of all calls is not the model's latency but a
  threshold. Once a call's CPU time nears the scheduler's slice, more than half of the calls are
  preempted and the median jumps to the wait for the core. ResNet-32 on OpenVINO, batch 1, load
  average ~12 on 2 cores, interleaved with its half-MAC pruned version: the original was preempted in
  72 % of its calls and the pruned one in 48 %, so the medians of all calls were 14.4 vs 1.9 ms (7.6x)
  while the undisturbed calls took 2.15 vs 1.38 ms (1.56x; preempted calls of both took 13-19 ms).
  With ``min_seconds``, rounds continue (up to ``EXTEND`` times as long) until each runner has
  ``MIN_KEPT_TARGET`` undisturbed calls. The undisturbed calls lean to the short ones (a longer call
  is likelier to be preempted): with preemptions at rate r, a call of d ms stays undisturbed with
  probability exp(-r d). At 92 % preempted 2.3 ms calls (r ~ 1.1 per ms, nice 10 at load average 20),
  calls 0.2 ms apart in duration are kept 0.8:1, which moves the median by a few percent, not by the
  wait for a core (tens of ms). Below ``MIN_KEPT`` / ``MIN_KEPT_SHARE`` the figures include the waits
  and the bench report says so (:func:`preemption_notes`).
* CPU thread count is fixed while timing (``torch.set_num_threads``; onnxruntime sessions get
  ``intra_op_num_threads``) and restored afterwards; the garbage collector is paused.
* onnxruntime thread pools do not spin between runs (``export.verify.make_session``): with two
  sessions interleaved, the idle one's spinning workers otherwise steal the cores the running one
  needs (ResNet-20 batch 32 measured 2.7x slower that way). Only runners of one backend are
  interleaved with each other (``export.bench``), never torch with onnxruntime, whose OpenMP
  and onnxruntime pools would contend the same way.

* On CPUs that other processes keep busy, torch with more than one thread needs
  ``OMP_WAIT_POLICY=PASSIVE`` in the environment before torch is imported: libgomp's spin-waiting
  barriers, with the cores shared, made ResNet-20 batch 32 take 1,470 ms at 2 threads instead of
  70 ms (1 thread, or 2 threads with PASSIVE). On idle CPUs PASSIVE only adds a wake-up to every
  parallel region, so the CLI sets it only when it starts on busy CPUs (``compress.cli.openmp``).
  ``passive_omp()`` reports whether it is set; the bench records it and notes torch timed with
  spinning threads on busy CPUs (``export.cpu_load``).

Repeatability measured here (2 cores, load average 4-6 from other jobs, onnxruntime, 3 repeats of
ResNet-20 FP32+INT8 interleaved, 2 threads): batch 32 FP32 p50 24.2-24.4 ms (1 %), INT8
8.7-10.6 ms; batch 1 FP32 0.92-0.94 ms, INT8 0.49-0.50 ms (2 %).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn

try:
    import resource
except ImportError:  # Windows: no getrusage, no calls set aside
    resource = None

from compress.export.verify import make_session

Runner = Callable[[], None]

MIN_KEPT = 10  # undisturbed calls each runner needs for the statistics to be over those alone
MIN_KEPT_SHARE = 0.05  # ... and this share of its calls
MIN_KEPT_TARGET = 20  # with min_seconds: rounds continue until each runner has this many undisturbed calls
EXTEND = 3.0  # ... for at most this many times the time the rounds took until then
MAX_EXTEND_S = 10.0  # ... and at most this many extra seconds


@dataclass
class LatencyStats:
    """Per-call latency in milliseconds over ``iters`` timed calls of one batch of ``batch``."""

    mean: float
    std: float
    p50: float
    p90: float
    p99: float
    min: float
    throughput: float  # images per second, batch / p50
    iters: int  # timed calls
    batch: int
    preempted: float = 0.0  # share of the timed calls during which the process was switched out
    kept: int | None = None  # calls the figures above are over (None: all ``iters``)
    p50_all: float | None = None  # median of all timed calls, preempted ones included

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(samples_ms: Sequence[float], batch: int = 1) -> LatencyStats:
    """Statistics of per-call times in ms; percentiles by linear interpolation (numpy default)."""
    x = np.asarray(list(samples_ms), dtype=np.float64)
    if x.size == 0:
        raise ValueError("no latency samples to summarize")
    p50, p90, p99 = (float(v) for v in np.percentile(x, [50, 90, 99]))
    return LatencyStats(
        mean=float(x.mean()), std=float(x.std(ddof=1)) if x.size > 1 else 0.0, p50=p50, p90=p90, p99=p99,
        min=float(x.min()), throughput=float(batch * 1000.0 / p50) if p50 > 0 else math.inf,
        iters=int(x.size), batch=int(batch),
    )


def time_interleaved(runners: Mapping[str, Runner], *, warmup: int = 10, iters: int = 50,
                     min_seconds: float | None = None, sync: Callable[[], None] | None = None,
                     batch: int = 1, threads: int | None = None,
                     clock: Callable[[], int] = time.perf_counter_ns,
                     switches: Callable[[], int] | None = None) -> dict[str, LatencyStats]:
    """Time each runner ``iters`` times (or more, to fill ``min_seconds``), alternating them.

    ``sync`` is called after each call, inside the timed region (e.g. ``torch.cuda.synchronize``
    when a runner does not synchronise itself). ``threads`` fixes ``torch.set_num_threads`` for
    the duration. ``switches`` counts the process's involuntary context switches (default
    :func:`involuntary_switches`): calls during which it changes are set aside (module docstring).
    Returns ``{name: LatencyStats}`` in the order given.
    """
    names = list(runners)
    if not names:
        return {}
    if iters < 1:
        raise ValueError("iters must be >= 1")
    switches = switches or involuntary_switches
    samples: dict[str, list[float]] = {n: [] for n in names}
    switched: dict[str, list[bool]] = {n: [] for n in names}
    with torch_threads(threads), _gc_paused():
        for _ in range(max(0, warmup)):
            for n in names:
                runners[n]()
                if sync:
                    sync()
        start = time.perf_counter()
        rounds = 0
        done_at = None  # when iters and min_seconds were satisfied
        while True:
            now = time.perf_counter()
            if rounds >= iters and not (min_seconds and now - start < min_seconds):
                done_at = done_at or now
                if not min_seconds or now - done_at >= min(EXTEND * (done_at - start), MAX_EXTEND_S) or all(
                        switched[n].count(False) >= MIN_KEPT_TARGET for n in names):
                    break
            k = rounds % len(names)
            for n in names[k:] + names[:k]:
                before = switches()
                t0 = clock()
                runners[n]()
                if sync:
                    sync()
                t1 = clock()
                switched[n].append(switches() != before)
                samples[n].append((t1 - t0) / 1e6)
            rounds += 1
    return undisturbed_stats(samples, switched, batch)


def undisturbed_stats(samples: Mapping[str, Sequence[float]], switched: Mapping[str, Sequence[bool]],
                      batch: int) -> dict[str, LatencyStats]:
    """``{name: LatencyStats}`` over the calls not preempted when every runner kept enough of them
    (the same choice for all runners, so their figures stay comparable), else over all calls."""
    kept = {n: [t for t, s in zip(samples[n], switched[n]) if not s] for n in samples}
    use_kept = all(len(kept[n]) >= max(MIN_KEPT, MIN_KEPT_SHARE * len(samples[n])) for n in samples)
    out = {}
    for n, all_ms in samples.items():
        stats = summarize(kept[n] if use_kept else all_ms, batch)
        stats.iters = len(all_ms)
        stats.preempted = float(np.mean(switched[n])) if len(switched[n]) else 0.0
        stats.kept = len(kept[n]) if use_kept else len(all_ms)
        stats.p50_all = float(np.median(all_ms))
        out[n] = stats
    return out


def preemption_notes(rows: Sequence[dict]) -> list[str]:
    """The bench report's note when other processes preempted timed calls (rows' ``latency_ms`` dicts)."""
    hit = [r for r in rows if (r.get("latency_ms") or {}).get("preempted")]
    if not hit:
        return []
    kept = [r for r in hit if r["latency_ms"].get("kept") != r["latency_ms"].get("iters")]
    shares = [r["latency_ms"]["preempted"] for r in hit]
    line = (f"other processes preempted {min(shares):.0%}-{max(shares):.0%} of the timed calls in {len(hit)} of "
            f"{len(rows)} rows: ")
    if kept:
        line += (f"{len(kept)} rows' latencies are over the calls not preempted (the median of all calls, "
                 "p50_all in the JSON, measures the wait for a core, not the model)")
    else:
        line += "too few calls were undisturbed, so the latencies include the waits; rerun on a quieter machine"
    if kept and len(kept) < len(hit):
        line += f"; {len(hit) - len(kept)} rows (too few undisturbed calls) include the waits"
    return [line]


def involuntary_switches() -> int:
    """Involuntary context switches of this process so far, all threads (0 where the OS does not say)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw if resource is not None else 0


def passive_omp() -> bool:
    """True when OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``)."""
    return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """``torch.set_num_threads(threads)`` inside the block, the previous count restored after."""
    if not threads:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _gc_paused():
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def torch_runner(model: nn.Module, example: torch.Tensor, device: str | torch.device = "cpu") -> Runner:
    """A runner calling a copy of ``model`` (eval mode, on ``device``) on ``example`` under inference mode.

    On CUDA every call ends with ``torch.cuda.synchronize()`` so wall time covers the kernels.
    """
    device = torch.device(device)
    net = copy.deepcopy(model).eval().to(device)
    x = example.detach().to(device, torch.float32).contiguous()
    cuda = device.type == "cuda"

    def run() -> None:
        with torch.inference_mode():
            net(x)
        if cuda:
            torch.cuda.synchronize(device)

    return run


def ort_runner(path: str | Path, example: torch.Tensor | np.ndarray, threads: int | None = None,
               providers: Sequence[str] | None = None) -> Runner:
    """A runner calling an onnxruntime session (fixed ``intra_op`` threads, sequential execution)."""
    session = make_session(path, providers, threads=threads or 1)
    name = session.get_inputs()[0].name
    x = example.detach().cpu().numpy() if isinstance(example, torch.Tensor) else example
    feed = {name: np.ascontiguousarray(x, dtype=np.float32)}

    def run() -> None:
        session.run(None, feed)

    return run

