"""Recovery by self-distillation: the original model (teacher) teaches the pruned one (student).

No labels: the loss is ``KL(softmax(t/T) || softmax(s/T)) * T^2`` on augmented unlabeled images (for a
classifier; the task, ``compress.tasks``, gives the loss per output kind, e.g. per-pixel KL for dense maps,
and the held-out figure, e.g. mIoU against the teacher's argmax). Teacher and student always see the same
augmented batch (same crop, flip and CutMix), so a dense target stays aligned with the student's input.
The student trains in train mode (its BatchNorm statistics follow its new channels), the teacher
runs in eval mode without gradients and is never changed. Progress is judged on a held-out split
by top-1 agreement with the teacher, of a moving average of the student's weights (``ema``; the
student itself with ``ema=0``); the best one seen is what comes back, where differences the held-out
split cannot resolve go to the later check (:func:`not_worse`, with at least ``SELECT_MIN_IMAGES`` held
out): with 200 held-out images one check's agreement is only known to about +-2.5 points, and the
highest raw figure once kept weights from well before the end of the schedule.

Budget (``epochs`` / ``steps``; both ``None`` = automatic, see :func:`auto_epochs`): few images need
many augmented passes; many images need fewer passes, and fewer samples in all, since distinct
images carry more than repeated ones.

The runs behind these choices and the defaults below (figures, seeds, machines) are in
benchmarks/RESULTS.md, section "Distillation defaults".
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import torch
import torch.nn as nn

from compress.augment import AUGMENTS, PAD_MODES, BatchAugment
from compress import distributed
from compress.devices import device_of, resolve_device
from compress.teacher import folded_teacher
from compress.errors import UsageError

OPTIMIZERS = ("sgd", "adamw")
AMP_MODES = ("auto", "off", "bf16", "fp16")
CHANNELS_LAST_MODES = ("auto", "on", "off")
AUTO_SAMPLES = 216_000  # augmented images seen by the automatic budget at and below...
AUTO_KNEE = 1_800  # ...this many training images (120 epochs); beyond, samples fall as 1/sqrt(n)
AUTO_MINUTES = 9.5  # wall-time cap of the automatic budget (an explicit epochs/steps budget has none): the issue's
# 10 minutes less a margin; 9.5 against the earlier 8: benchmarks/RESULTS.md, "Distillation defaults"
SELECT_Z = 2.0  # an earlier check is kept over a later one only when it agrees on more held-out images by more
# than this many standard errors of the paired difference (see not_worse)
SELECT_MIN_IMAGES = 100  # below this many held-out images the test is too coarse (a few images, all going one way,
# would still count as a tie): the highest agreement wins, ties -> the later check
AUTO_EVALS = 12  # held-out evaluations per run when eval_every is None
CAP_FIRST_CHECK = 20  # steps timed before the time cap first estimates how many fit


class DistillConfigError(UsageError, ValueError):
    """A distillation setting that cannot work (a ValueError the CLI can print)."""


def auto_epochs(n_train: int, samples: int = AUTO_SAMPLES) -> float:
    """Automatic epochs for ``n_train`` training images.

    samples = 216k * min(1, sqrt(1800 / n)), epochs = max(1, samples / n):
    200 images -> 1,080 epochs, 1,800 -> 120, 4,500 -> 30.4 (137k samples), 9,000 -> 10.7,
    18,000 -> 3.8, 129,600 or more -> 1. On 2 CPU cores 120 epochs of a half-pruned CIFAR ResNet
    do not fit in float32, so the automatic budget also stops at ``AUTO_MINUTES`` of wall time
    (``DistillConfig.max_minutes``): the schedule shrinks to the steps that fit. Measured epochs, times
    and recovered top-1: benchmarks/RESULTS.md, "Distillation defaults".
    """
    if n_train <= 0:
        raise DistillConfigError("no training images", "give at least one calibration image")
    samples = samples * min(1.0, math.sqrt(AUTO_KNEE / n_train))
    return float(max(1.0, samples / n_train))


@dataclass(frozen=True)
class DistillConfig:
    """Distillation settings. Set at most one of ``epochs`` / ``steps`` (neither = automatic)."""

    epochs: float | None = None
    steps: int | None = None
    batch_size: int = 64
    lr: float | None = None  # peak learning rate; None: the task's (compress.tasks: 0.01 for a classifier, 0.05
    # for a segmenter)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    temperature: float = 4.0
    warmup_fraction: float = 0.03
    augment: str = "auto"
    pad_mode: str = "reflect"
    cutmix: float = 0.5
    features: float = 0.0  # weight of stage-output feature matching (compress.feature_match); 0 = off
    ema: float = 0.999  # decay of a moving average of the student's weights (0 = off); when on, the held-out
    # checks measure, and the run returns, the average (why: benchmarks/RESULTS.md, "Distillation defaults")
    max_minutes: float | None = None  # wall-time cap; None = AUTO_MINUTES for the automatic budget, else none
    eval_every: int | None = None
    amp: str = "auto"
    channels_last: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        def bad(msg: str, hint: str) -> None:
            raise DistillConfigError(msg, hint)

        if self.epochs is not None and self.steps is not None:
            bad("both epochs and steps are set", "give one budget: epochs or steps")
        if self.epochs is not None and not (self.epochs > 0 and math.isfinite(self.epochs)):
            bad(f"epochs must be a positive number, got {self.epochs}", "e.g. epochs=30")
        if self.steps is not None and (not _is_int(self.steps) or self.steps < 1):
            bad(f"steps must be a positive integer, got {self.steps!r}", "e.g. steps=1000")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            bad(f"batch_size must be a positive integer, got {self.batch_size!r}", "e.g. 64")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            bad(f"lr must be positive, got {self.lr}", "e.g. 0.1 for sgd, 1e-3 for adamw")
        if not 0 <= self.momentum < 1:
            bad(f"momentum must be in [0, 1), got {self.momentum}", "e.g. 0.9")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            bad(f"weight_decay must be >= 0, got {self.weight_decay}", "e.g. 5e-4")
        if self.optimizer not in OPTIMIZERS:
            bad(f"unknown optimizer {self.optimizer!r}", f"choose one of {', '.join(OPTIMIZERS)}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            bad(f"temperature must be positive, got {self.temperature}", "e.g. 4")
        if not 0 <= self.warmup_fraction < 1:
            bad(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}", "e.g. 0.03")
        if self.augment not in AUGMENTS:
            bad(f"unknown augment {self.augment!r}", f"choose one of {', '.join(AUGMENTS)}")
        if self.pad_mode not in PAD_MODES:
            bad(f"unknown pad_mode {self.pad_mode!r}", f"choose one of {', '.join(PAD_MODES)}")
        if not 0 <= self.cutmix <= 1:
            bad(f"cutmix probability must be in [0, 1], got {self.cutmix}", "e.g. 0.5, or 0 to disable")
        if not (self.features >= 0 and math.isfinite(self.features)):
            bad(f"features weight must be >= 0, got {self.features}", "e.g. 1.0, or 0 to disable")
        if not 0 <= self.ema < 1:
            bad(f"ema decay must be in [0, 1), got {self.ema}", "e.g. 0.999, or 0 to disable")
        if self.max_minutes is not None and not (self.max_minutes > 0 and not math.isnan(self.max_minutes)):
            bad(f"max_minutes must be positive, got {self.max_minutes}", f"e.g. {AUTO_MINUTES:g}, or inf for no cap")
        if self.eval_every is not None and (not _is_int(self.eval_every) or self.eval_every < 1):
            bad(f"eval_every must be a positive integer, got {self.eval_every!r}", "or None for automatic")
        if self.amp not in AMP_MODES:
            bad(f"unknown amp mode {self.amp!r}", f"choose one of {', '.join(AMP_MODES)}")
        if self.channels_last not in CHANNELS_LAST_MODES:
            bad(f"unknown channels_last mode {self.channels_last!r}", f"choose one of {', '.join(CHANNELS_LAST_MODES)}")
        if not _is_int(self.seed):
            bad(f"seed must be an integer, got {self.seed!r}", "e.g. 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class DistillResult:
    """What a run did. ``student`` holds the best weights (by held-out agreement)."""

    student: nn.Module
    steps: int  # optimizer steps taken
    seconds: float
    agreement_before: float  # held-out top-1 agreement with the teacher, incoming student
    agreement_after: float  # ... of the returned student
    kl_before: float  # held-out mean KL(teacher || student) at T=1, nats per image
    kl_after: float
    best_step: int  # step whose weights were returned (0 = the incoming student)
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None  # None, "non-finite loss at step N", "interrupted at step N"
    config: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    epochs: float = 0.0  # passes over the training images actually made
    train_images: int | None = None
    planned_steps: int = 0  # the budget before the time cap shrank it (== steps when it did not)
    max_minutes: float | None = None  # the time cap that applied, if any
    precision: str = "fp32"  # what the student trained in: "fp32", "bf16" or "fp16" (autocast)


# --------------------------------------------------------------------------- evaluation helpers


def _first(batch: Any) -> torch.Tensor:
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def image_batches(images: Any, batch_size: int) -> Iterator[torch.Tensor]:
    """Batches of images from a float tensor (N,3,H,W) or a loader of batches / ``(batch, index)`` tuples."""
    if isinstance(images, torch.Tensor):
        for i in range(0, images.shape[0], batch_size):
            yield images[i : i + batch_size]
    else:
        for b in images:
            yield _first(b)


def _to(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """A batch on ``device``, in the memory layout the models run in."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def not_worse(best_hits: torch.Tensor, hits: torch.Tensor, z: float = SELECT_Z) -> bool:
    """Whether a later check (``hits``: per held-out image, 1 where the student agrees with the teacher)
    is not measurably worse than the best one seen (``best_hits``, same images).

    Paired sign test: of the images where exactly one of the two agrees, the best must win more than
    ``z`` standard errors (sqrt of their number) beyond an even split to count as better. Per-image
    fractions (a segmenter's pixel agreement) take the same test with sqrt(sum of squared differences),
    which is the sign test's figure for 0/1 values.
    """
    diff = best_hits.float() - hits.float()
    return diff.sum().item() <= z * math.sqrt((diff * diff).sum().item())


@torch.no_grad()
def _agreement_logits(student: nn.Module, images: Any, teacher_logits: list[Any] | None,
                      teacher: nn.Module | None, device: torch.device, batch_size: int,
                      channels_last: bool = False, task=None) -> tuple[float, float, torch.Tensor]:
    """(the task's agreement, mean KL per image, per-image values: for a classifier 1 where the two
    models' top-1 agree, for a segmenter the fraction of pixels whose argmax agrees)."""
    from compress.tasks import default_task

    meter = (task or default_task()).agreement_meter()
    was = student.training
    student.eval()
    try:
        for i, x in enumerate(image_batches(images, batch_size)):
            x = _to(x, device, channels_last)
            t = teacher_logits[i] if teacher_logits is not None else teacher(x)
            meter.update(student(x), t)
    finally:
        student.train(was)
    h = meter.per_image()
    if not h.numel():
        raise DistillConfigError("no held-out images to measure agreement on", "give at least one image")
    return meter.value(), meter.kl(), h


def agreement(student: nn.Module, teacher: nn.Module, images: Any, *, device: str | torch.device = "cpu",
              batch_size: int = 256, task=None) -> tuple[float, float]:
    """(the task's agreement (top-1 agreement for a classifier), mean KL(teacher || student) at T=1) of
    two models on ``images``.

    Both models are run in eval mode on ``device`` (moved there; devices and modes restored afterwards).
    """
    dev = resolve_device(device)
    homes = [(m, device_of(m)) for m in (student, teacher)]
    t_was = teacher.training
    teacher.eval()
    try:
        return _agreement_logits(student.to(dev), images, None, teacher.to(dev), dev, batch_size, task=task)[:2]
    finally:
        teacher.train(t_was)
        for model, home in homes:
            model.to(home)


@torch.no_grad()
def top1_accuracy(model: nn.Module, images: Any, labels: torch.Tensor | None = None, *,
                  device: str | torch.device = "cpu", batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on ``images``/``labels`` tensors, or on an
    iterable of ``(images, labels)`` batches when ``labels`` is None."""
    dev = resolve_device(device)
    was = model.training
    model.eval().to(dev)
    if labels is not None:
        pairs: Iterable = ((images[i : i + batch_size], labels[i : i + batch_size])
                           for i in range(0, images.shape[0], batch_size))
    else:
        pairs = images
    correct = n = 0
    try:
        for x, y in pairs:
            pred = model(x.to(dev)).argmax(1).cpu()
            correct += (pred == y.cpu()).sum().item()
            n += y.shape[0]
    finally:
        model.train(was)
    if n == 0:
        raise ValueError("no labelled images to measure accuracy on")
    return correct / n


# --------------------------------------------------------------------------- training


class _TrainStream:
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
                    yield _first(b)
                if empty:
                    raise DistillConfigError("the training loader yielded no batches", "check the calibration images")


def _budget(config: DistillConfig, stream: _TrainStream, n_global: int | None = None,
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


def _max_minutes(config: DistillConfig) -> float | None:
    if config.max_minutes is not None:
        return None if math.isinf(config.max_minutes) else config.max_minutes
    return AUTO_MINUTES if config.epochs is None and config.steps is None else None


class _StepBudget:
    """The run's total steps, at most the planned ones, set so it ends within ``minutes`` of wall time: after
    the first steps and at each held-out check, the time per step so far says how many still fit (the first
    estimate runs high while kernels warm up; later ones correct it, both ways). All ranks take rank 0's."""

    def __init__(self, total: int, minutes: float | None):
        self.total = self.planned = total
        self.minutes = minutes
        self.seconds = None if minutes is None else 60.0 * minutes
        self.t_run = self.t_loop = time.perf_counter()

    def start_loop(self) -> None:
        self.t_loop = time.perf_counter()

    def check(self, step: int) -> None:
        if self.seconds is None or step < 1:
            return
        now = time.perf_counter()
        per_step = (now - self.t_loop) / step
        fit = step + int(max(0.0, self.seconds - (now - self.t_run)) / max(per_step, 1e-9))
        self.total = max(step, min(self.planned, int(distributed.broadcast(fit))))


def _lr_lambda(budget: _StepBudget, warmup_fraction: float):
    """Linear warm-up over a share of the planned steps, then cosine to zero at the (possibly shrunk) total."""
    warm = int(round(warmup_fraction * budget.planned))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        total = budget.total
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return f


def _optimizer(student: nn.Module, config: DistillConfig) -> torch.optim.Optimizer:
    params = [p for p in student.parameters() if p.requires_grad]
    if not params:
        raise DistillConfigError("the student has no trainable parameters", "unfreeze its weights")
    decay = [p for p in params if p.ndim > 1]  # conv / linear weights; no decay on BN and biases
    rest = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)


def cpu_bf16() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (oneDNN: AVX-512 BF16 or AMX); elsewhere bf16 is
    emulated and slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def amp_dtype(config: DistillConfig, dev: torch.device) -> torch.dtype | None:
    """CUDA ("auto"): bf16 where supported, else fp16. CPU ("auto"): bf16 where oneDNN runs it natively
    (AVX-512 BF16 / AMX), else float32. Weights, optimizer state and the loss stay float32 (autocast).
    bf16 against float32 on a CPU: benchmarks/RESULTS.md, "Distillation defaults"."""
    if config.amp == "off":
        return None
    if dev.type != "cuda":
        if config.amp == "fp16":
            raise DistillConfigError(f"amp='fp16' needs a CUDA device, got {dev}", "use amp='auto', 'bf16' or 'off'")
        if config.amp == "bf16" and not cpu_bf16():
            raise DistillConfigError("amp='bf16' on a CPU without native bfloat16 would be slower than float32",
                                     "use amp='auto' or 'off'")
        return torch.bfloat16 if config.amp == "bf16" or cpu_bf16() else None
    if config.amp == "fp16" or (config.amp == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class _WeightAverage:
    """An exponential moving average of a model's parameters and floating-point buffers (BatchNorm running
    statistics), with the usual warm-up: decay min(d, (1 + step) / (10 + step)), so the start does not linger."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        pairs = list(zip(self.model.parameters(), model.parameters()))
        pairs += [(a, b) for a, b in zip(self.model.buffers(), model.buffers()) if a.is_floating_point()]
        self.dst, self.src = [a for a, _ in pairs], [b for _, b in pairs]
        self.counters = [(a, b) for a, b in zip(self.model.buffers(), model.buffers()) if not a.is_floating_point()]

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.dst, self.src, 1.0 - d)
        for a, b in self.counters:
            a.copy_(b)


def distill(student: nn.Module, teacher: nn.Module, train_images: Any, holdout_images: Any,
            config: DistillConfig | None = None, *, device: str | torch.device = "cpu",
            progress: bool = True, task=None) -> DistillResult:
    """Train ``student`` to match ``teacher`` on unlabeled images; return the best student.

    ``train_images`` / ``holdout_images``: preprocessed float tensors (N, 3, H, W), or loaders
    yielding tensors or ``(tensor, index)`` tuples. A non-finite loss or Ctrl-C stops the run
    without raising: the best weights so far are restored and ``stopped`` says why. ``task``
    (``compress.tasks``; default: a classifier) gives the loss, the held-out figure and the automatic budget.
    """
    from compress.tasks import default_task

    config = config or DistillConfig()
    task = task or default_task()
    if config.lr is None:
        config = dataclasses.replace(config, lr=task.distill_lr)
    dev = resolve_device(device)
    autocast_dtype = amp_dtype(config, dev)
    # channels-last: on CUDA, and on CPUs too (oneDNN; a float32 ResNet-32 step 1.27x faster here)
    cl = config.channels_last in ("on", "auto")
    n_global = train_images.shape[0] if isinstance(train_images, torch.Tensor) else None
    rank_seed = 7919 * distributed.rank()  # each rank its own shuffles and augmentations
    if distributed.active() and isinstance(train_images, torch.Tensor):
        train_images = train_images[distributed.shard(n_global)]  # this rank's share of the images
    progress = progress and distributed.is_main()
    gen = torch.Generator().manual_seed(config.seed + rank_seed)
    stream = _TrainStream(train_images, config.batch_size, gen)
    total, epochs = _budget(config, stream, n_global, task.auto_samples)
    every = config.eval_every or max(1, math.ceil(total / AUTO_EVALS))
    augment = BatchAugment(config.augment, cutmix=config.cutmix, pad_mode=config.pad_mode,
                           seed=config.seed + 1 + rank_seed)

    s_dev, t_dev, s_was, t_was = device_of(student), device_of(teacher), student.training, teacher.training
    student.to(dev)
    teacher.to(dev).eval()
    if cl:
        student.to(memory_format=torch.channels_last)
        teacher.to(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    try:
        cuda_ids = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda_ids):
            torch.manual_seed(config.seed)  # dropout and the like in the student
            result = _run(student, teacher, stream, holdout_images, config, dev, autocast_dtype, cl,
                          total, every, augment, progress, task)
    finally:
        if cl:
            student.to(memory_format=torch.contiguous_format)
            teacher.to(memory_format=torch.contiguous_format)
        student.to(s_dev).train(s_was)
        teacher.to(t_dev).train(t_was)
    result.seconds = time.perf_counter() - t0
    result.epochs = result.steps / stream.steps_per_epoch if stream.steps_per_epoch else (epochs or 0.0)
    result.train_images = stream.n_train
    result.device = str(dev)
    result.precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(autocast_dtype, "fp32")
    return result


def _run(student, teacher, stream, holdout, config, dev, autocast_dtype, cl, total, every, augment, progress,
         task) -> DistillResult:
    budget = _StepBudget(total, _max_minutes(config))
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bs_eval = max(256, config.batch_size)
    example = _to(holdout[:2] if isinstance(holdout, torch.Tensor) else _first(next(iter(holdout)))[:2], dev, cl)
    # feature matching hooks the teacher's own modules; otherwise its BatchNorms are folded away
    runner = teacher if config.features > 0 else folded_teacher(teacher, example)[0]
    cached = None
    if isinstance(holdout, torch.Tensor):  # the teacher's held-out logits never change: compute once
        with torch.no_grad():
            cached = [runner(_to(x, dev, cl)) for x in image_batches(holdout, bs_eval)]

    ema = _WeightAverage(student, config.ema) if config.ema > 0 else None
    judged = ema.model if ema is not None else student  # what the held-out checks measure and what comes back

    def evaluate() -> tuple[float, float, torch.Tensor]:
        return _agreement_logits(judged, holdout, cached, runner, dev, bs_eval, cl, task=task)

    agree0, kl0, hits0 = evaluate()
    top = {"agreement": agree0, "hits": hits0}  # the highest held-out agreement seen (ties -> later)
    best = {"agreement": agree0, "kl": kl0, "step": 0, "state": _snapshot(judged)}  # what comes back
    history: list[dict[str, Any]] = [{"step": 0, "loss": None, "lr": 0.0, "train_agreement": None,
                                      "holdout_agreement": agree0, "holdout_kl": kl0, "seconds": 0.0}]
    opt = _optimizer(student, config)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(budget, config.warmup_fraction))
    scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype == torch.float16)
    T = float(config.temperature)
    stopped: str | None = None
    done = 0
    window_loss: list[float] = []
    window_agree: list[float] = []
    ema_agree = None
    t_start = time.perf_counter()
    bar = Progress(TextColumn("distill"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), disable=not progress)

    def checkpoint(step: int) -> None:
        agree, kl, hits = evaluate()
        history.append({"step": step, "loss": sum(window_loss) / max(1, len(window_loss)),
                        "lr": opt.param_groups[0]["lr"],
                        "train_agreement": sum(window_agree) / max(1, len(window_agree)),
                        "holdout_agreement": agree, "holdout_kl": kl,
                        "seconds": time.perf_counter() - t_start})
        window_loss.clear()
        window_agree.clear()
        if not math.isfinite(kl):
            return
        highest = agree >= top["agreement"]  # ties -> the later check
        if highest:
            top.update(agreement=agree, hits=hits)
        tie = not highest and hits.numel() >= SELECT_MIN_IMAGES and not_worse(top["hits"], hits)
        if highest or tie:
            best.update(agreement=agree, kl=kl, step=step, state=_snapshot(judged))

    features = None
    if config.features > 0:
        from compress.feature_match import FeatureMatch

        features = FeatureMatch(student, teacher, example)
    student.train()
    net = student
    if distributed.active():  # gradients averaged across ranks; held-out checks run on every rank alike
        ids = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(student, device_ids=ids)
    batches = iter(stream)
    budget.start_loop()
    with bar:
        bar_task = bar.add_task("distill", total=total, status="")
        try:
            step = 0
            while step < budget.total:
                step += 1
                x = _to(augment(next(batches).to(dev, non_blocking=True)), dev, cl)
                with torch.autocast(dev.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                    with torch.no_grad():
                        t = runner(x)
                    s = net(x)
                loss = task.distill_loss(s, t, T)
                if features is not None:
                    loss = loss + config.features * features.loss()
                match = task.batch_agreement(s, t)
                loss_v, match_v = torch.stack([loss.detach(), match]).tolist()
                bad = torch.tensor([0.0 if math.isfinite(loss_v) else 1.0], device=dev)
                if distributed.all_reduce_sum(bad).item() > 0:  # one rank's NaN stops them all
                    stopped = f"non-finite loss at step {step}"
                    break
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                sched.step()
                if ema is not None:
                    ema.update(step)
                done = step
                window_loss.append(loss_v)
                window_agree.append(match_v)
                ema_agree = match_v if ema_agree is None else 0.95 * ema_agree + 0.05 * match_v
                if step == CAP_FIRST_CHECK or step % every == 0:
                    budget.check(step)
                    bar.update(bar_task, total=budget.total)
                if step % every == 0 or step == budget.total:
                    checkpoint(step)
                held = history[-1]["holdout_agreement"]
                bar.update(bar_task, advance=1, status=f"loss {loss_v:.3f}  agree {ema_agree:.1%}  held-out {held:.1%}")
        except KeyboardInterrupt:
            stopped = f"interrupted at step {done + 1}"
        finally:
            if features is not None:
                features.close()
    student.load_state_dict(best["state"])
    return DistillResult(student=student, steps=done, seconds=0.0, agreement_before=agree0,
                         agreement_after=best["agreement"], kl_before=kl0, kl_after=best["kl"],
                         best_step=best["step"], history=history, stopped=stopped,
                         config=config.to_dict(), planned_steps=budget.planned,
                         max_minutes=budget.minutes)
