"""Latency: summary statistics and interleaved timing of several runners.

Timing design (for a noisy shared 2-core machine):

* Runners are timed **interleaved**: one call of each per round, the starting runner rotating
  every round (a b | b a | a b ...), so slow drifts (thermal, a neighbour's job) hit all alike and
  no runner always follows the same one.
* Warm-up calls first (allocator, oneDNN/MLAS kernel selection, lazy init), then at least
  ``iters`` timed rounds and, with ``min_seconds``, at least that much wall time.
* The **median** (p50) is the headline figure: one preempted call moves the mean, not the median.
  Throughput is ``batch / p50``.
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

from compress.export.tensorrt import TensorRTRunner
from compress.export.verify import make_session

Runner = Callable[[], None]


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
    iters: int
    batch: int

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
                     clock: Callable[[], int] = time.perf_counter_ns) -> dict[str, LatencyStats]:
    """Time each runner ``iters`` times (or more, to fill ``min_seconds``), alternating them.

    ``sync`` is called after each call, inside the timed region (e.g. ``torch.cuda.synchronize``
    when a runner does not synchronise itself). ``threads`` fixes ``torch.set_num_threads`` for
    the duration. Returns ``{name: LatencyStats}`` in the order given.
    """
    names = list(runners)
    if not names:
        return {}
    if iters < 1:
        raise ValueError("iters must be >= 1")
    samples: dict[str, list[float]] = {n: [] for n in names}
    with torch_threads(threads), _gc_paused():
        for _ in range(max(0, warmup)):
            for n in names:
                runners[n]()
                if sync:
                    sync()
        start = time.perf_counter()
        rounds = 0
        while rounds < iters or (min_seconds and time.perf_counter() - start < min_seconds):
            k = rounds % len(names)
            for n in names[k:] + names[:k]:
                t0 = clock()
                runners[n]()
                if sync:
                    sync()
                samples[n].append((clock() - t0) / 1e6)
            rounds += 1
    return {n: summarize(samples[n], batch) for n in names}


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


def trt_runner(engine_path: str | Path, example: torch.Tensor) -> Runner:
    """A runner executing a TensorRT engine on ``example`` (copied once to the GPU); synchronises."""
    engine = TensorRTRunner(engine_path)
    x = example.detach().to("cuda", torch.float32).contiguous()
    engine.prepare(x)

    def run() -> None:
        engine.execute()
        torch.cuda.synchronize()

    return run
