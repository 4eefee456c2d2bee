"""How long a run trains: the stream of training batches, the planned steps, the wall-time cap and the
learning-rate schedule that follows the (possibly shrunk) total."""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any, Iterator

import torch

from compress import distributed
from compress.recover.config import AUTO_MINUTES, AUTO_SAMPLES, CAP_FIRST_CHECK, DistillConfig, DistillConfigError, auto_epochs
from compress.recover.metrics import first_tensor


class TrainStream:
    """Endless batches of training images: shuffled tensor slices, or a re-iterated loader."""

    def __init__(self, images: Any, batch_size: int, generator: torch.Generator):
        self.images, self.generator = images, generator
        if isinstance(images, torch.Tensor):
            if images.ndim != 4 or images.shape[0] < 2:
                raise DistillConfigError(f"train_images must be an (N, C, H, W) tensor with N >= 2, got shape "
                                         f"{tuple(images.shape)}", "pass preprocessed calibration images")
            self.n_train: int | None = images.shape[0]
            self.batch_size = min(batch_size, images.shape[0])
            self.steps_per_epoch: int | None = images.shape[0] // self.batch_size  # full batches only
        else:
            self.batch_size = batch_size
            self.steps_per_epoch = len(images) if hasattr(images, "__len__") else None
            dataset = getattr(images, "dataset", None)
            self.n_train = len(dataset) if dataset is not None and hasattr(dataset, "__len__") else (
                self.steps_per_epoch * batch_size if self.steps_per_epoch else None)

    def __iter__(self) -> Iterator[torch.Tensor]:
        while True:
            if isinstance(self.images, torch.Tensor):
                perm = torch.randperm(self.images.shape[0], generator=self.generator)
                for k in range(self.steps_per_epoch or 0):
                    yield self.images[perm[k * self.batch_size : (k + 1) * self.batch_size]]
            else:
                empty = True
                for b in self.images:
                    empty = False
                    yield first_tensor(b)
                if empty:
                    raise DistillConfigError("the training loader yielded no batches", "check the calibration images")


def planned_steps(config: DistillConfig, stream: TrainStream, n_global: int | None = None,
                  samples: int | None = None) -> tuple[int, float | None]:
    """(total steps, epochs) for the run; under data parallelism steps are global (one optimizer
    step across all ranks) and the automatic budget follows the images of all ranks together."""
    if config.steps is not None:
        spe = stream.steps_per_epoch
        return config.steps, (config.steps / spe if spe else None)
    if stream.steps_per_epoch is None or stream.n_train is None:
        raise DistillConfigError("an epoch budget needs a training loader with a length", "give steps=... instead")
    epochs = config.epochs if config.epochs is not None else auto_epochs(n_global or stream.n_train,
                                                                         samples or AUTO_SAMPLES)
    return max(1, math.ceil(epochs * stream.steps_per_epoch)), epochs


def time_cap(config: DistillConfig) -> float | None:
    """The wall-time cap in minutes that applies: the explicit one (inf = none), else ``AUTO_MINUTES`` for
    the automatic budget and none for an explicit epochs/steps budget."""
    if config.max_minutes is not None:
        return None if math.isinf(config.max_minutes) else config.max_minutes
    return AUTO_MINUTES if config.epochs is None and config.steps is None else None


class StepBudget:
    """The run's total steps, at most the planned ones, set so it ends within ``minutes`` of wall time. From
    ``CAP_FIRST_CHECK`` steps on, the time per step of the *recent* steps -- the last ``every`` or more, so one
    held-out check is always inside -- says how many still fit: when the machine gets busier (or quieter)
    during the run, the estimate follows instead of averaging the change away (a run-long mean overshot the
    cap about 2x when the load rose late).

    In one process the estimate is redone after every step (a clock read), and before ``CAP_FIRST_CHECK`` a
    run whose time is spent stops: a machine that turns many times slower between two checks, or a model
    whose first steps alone outlast the cap, still ends within a step of it (checked every quarter of a
    held-out interval, a 9.5-minute run went on for 27 minutes when other jobs made its steps several times slower).
    Under torchrun the check is a collective, so it runs at the same steps on every rank: every quarter of a
    held-out interval (``every`` steps) from ``CAP_FIRST_CHECK`` on, all ranks taking rank 0's figure."""

    def __init__(self, total: int, minutes: float | None, every: int | None = None):
        self.total = self.planned = total
        self.minutes = minutes
        self.seconds = None if minutes is None else 60.0 * minutes
        self.span = max(1, every or CAP_FIRST_CHECK)  # steps the recent time per step is measured over, at least
        self.t_run = self.t_loop = time.perf_counter()
        self.marks: deque[tuple[int, float]] = deque([(0, self.t_loop)])

    def start_loop(self) -> None:
        self.t_loop = time.perf_counter()
        self.marks = deque([(0, self.t_loop)])

    def due(self, step: int) -> bool:
        """Whether :meth:`check` runs after ``step``: every step in one process; under torchrun the same steps
        on every rank."""
        if self.seconds is None:
            return False
        if not distributed.active():
            return True
        return step == CAP_FIRST_CHECK or (step > CAP_FIRST_CHECK and step % max(1, self.span // 4) == 0)

    def check(self, step: int) -> None:
        if self.seconds is None or step < 1:
            return
        now = time.perf_counter()
        if step < CAP_FIRST_CHECK:  # too few steps to estimate from: only stop once the time is spent
            if now - self.t_run >= self.seconds:
                self.total = step
            return
        self.marks.append((step, now))
        while len(self.marks) > 2 and self.marks[1][0] <= step - self.span:
            self.marks.popleft()
        s0, t0 = self.marks[0]
        per_step = (now - t0) / max(1, step - s0)
        fit = step + int(max(0.0, self.seconds - (now - self.t_run)) / max(per_step, 1e-9))
        self.total = max(step, min(self.planned, int(distributed.broadcast(fit))))


def lr_lambda(budget: StepBudget, warmup_fraction: float):
    """Linear warm-up over a share of the planned steps, then cosine to zero at the (possibly shrunk) total."""
    warm = int(round(warmup_fraction * budget.planned))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        total = budget.total
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return f
