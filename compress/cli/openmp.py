"""How idle OpenMP threads wait, chosen once at start-up, before torch is imported.

libgomp's default lets a thread that has finished its share spin briefly before it sleeps, so the
next parallel region starts without a wake-up. Distillation runs thousands of small parallel
regions per step, and the default is what it wants: a half-pruned ResNet-32 step (batch 64, fp32,
2 threads, AMD EPYC Zen 3 under KVM) took 309-318 ms by default and 634 ms with
``OMP_WAIT_POLICY=PASSIVE``, where every region pays a wake-up (on an AVX-512 BF16 EPYC: 116-133 ms
against 150-166 ms). On CPUs that other processes already keep busy, though, spinning threads steal
the cores that the work they wait for needs: two such steps side by side took 1,290 ms each by default
and 540 ms with PASSIVE, and torch latency timing of ResNet-20 at 2 threads measured 1,470 ms instead
of 70 ms. So PASSIVE is chosen only when other work keeps at least half the CPUs busy at start-up;
an ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` the user set is always kept. The wait policy changes
speed only, never results.
"""

from __future__ import annotations

import os
from typing import Callable, MutableMapping

from compress.export.cpu_load import BUSY, others_busy

DECISION = "COMPRESS_OPENMP"  # where the choice is recorded (and inherited by relaunched processes)
USER_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def choose_wait_policy(environ: MutableMapping[str, str] = os.environ,
                       busy: Callable[[], float | None] | None = None) -> str:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in ``environ`` when the CPUs are busy; return why it was or was not."""
    if DECISION in environ:  # decided by the process that launched this one (--devices)
        return environ[DECISION]
    if any(k in environ for k in USER_SETTINGS):
        decision = "user: " + ", ".join(f"{k}={environ[k]}" for k in USER_SETTINGS if k in environ)
    else:
        load = (busy or others_busy)()
        if load is not None and load >= BUSY:
            environ["OMP_WAIT_POLICY"] = "PASSIVE"
            decision = f"passive: other processes kept {load:.0%} of the CPUs busy at start-up"
        else:
            decision = "default: CPUs idle at start-up" if load is not None else "default: CPU load unknown"
    environ[DECISION] = decision
    return decision
