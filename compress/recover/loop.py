"""Recovery by self-distillation: the original model (teacher) teaches the pruned one (student).

No labels: the loss is ``KL(softmax(t/T) || softmax(s/T)) * T^2`` on augmented unlabeled images (for a
classifier; the task, ``compress.tasks``, gives the loss per output kind, e.g. per-pixel KL for dense maps,
and the held-out figure, e.g. mIoU against the teacher's argmax). Teacher and student always see the same
augmented batch (same crop, flip and CutMix), so a dense target stays aligned with the student's input.
The student trains in train mode (its BatchNorm statistics follow its new channels), the teacher
runs in eval mode without gradients and is never changed. Progress is judged on a held-out split
by top-1 agreement with the teacher, of a moving average of the student's weights (``ema``; the
student itself with ``ema=0``); the best one seen is what comes back (``selection``).

:func:`distill` sets the run up (devices, layout, precision, seeds, budget) and puts everything back
afterwards; :class:`_Run` is the run itself: one training step, one held-out check, the loop.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from compress import distributed
from compress.devices import device_of, resolve_device
from compress.recover.augment import BatchAugment
from compress.recover.budget import StepBudget, TrainStream, lr_lambda, planned_steps, time_cap
from compress.recover.config import AUTO_EVALS, DistillConfig, DistillConfigError
from compress.recover.ema import WeightAverage
from compress.recover.feature_match import FeatureMatch
from compress.recover.metrics import agreement_logits, first_tensor, image_batches, on_device
from compress.recover.precision import amp_dtype, precision_name
from compress.recover.reshape import Reshape, cut_student
from compress.recover.selection import Selection
from compress.recover.teacher import folded_teacher
from compress.recover.views import build_pool, declined
from compress.tasks import Task, default_task


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
    teacher_views: int = 0  # views per image in the pool of teacher outputs (0: none, fresh every step)
    views_note: str | None = None  # why a requested pool was not used
    views_seconds: float = 0.0  # spent building the pool (teacher passes over its views), within ``seconds``
    images_per_second: float | None = None  # training images per second of the step loop (held-out checks in it)


@dataclass(frozen=True)
class RunPlan:
    """How one run goes, fixed before its first step (built by :func:`distill`)."""

    config: DistillConfig  # with the task's learning rate filled in
    task: Task
    device: torch.device
    autocast: torch.dtype | None  # None: float32
    channels_last: bool
    total: int  # planned steps
    every: int  # steps between held-out checks
    progress: bool


def distill(student: nn.Module, teacher: nn.Module, train_images: Any, holdout_images: Any,
            config: DistillConfig | None = None, *, device: str | torch.device = "cpu",
            progress: bool = True, task: Task | None = None, reshape: Reshape | None = None) -> DistillResult:
    """Train ``student`` to match ``teacher`` on unlabeled images; return the best student.

    ``train_images`` / ``holdout_images``: preprocessed float tensors (N, 3, H, W), or loaders
    yielding tensors or ``(tensor, index)`` tuples. A non-finite loss or Ctrl-C stops the run
    without raising: the best weights so far are restored and ``stopped`` says why. ``task``
    (``compress.tasks``; default: a classifier) gives the loss, the held-out figure and the automatic budget.
    ``reshape`` (``compress.recover.reshape``), called after every step, may cut the student during the run
    (gradual pruning); what comes back is then the best check since the last cut.
    """
    config = config or DistillConfig()
    task = task or default_task()
    if config.lr is None:
        config = dataclasses.replace(config, lr=task.distill_lr)
    dev = resolve_device(device)
    if reshape is not None and (distributed.active() or config.features > 0):
        raise DistillConfigError("a student cut during its run trains in one process without feature matching",
                                 "use the one-shot schedule, or drop torchrun / --recover-features")
    autocast_dtype = amp_dtype(config, dev)
    # channels-last: on CUDA, and on CPUs too (oneDNN; a float32 ResNet-32 step 1.27x faster here)
    cl = config.channels_last in ("on", "auto")
    n_global = train_images.shape[0] if isinstance(train_images, torch.Tensor) else None
    rank_seed = 7919 * distributed.rank()  # each rank its own shuffles and augmentations
    if distributed.active() and isinstance(train_images, torch.Tensor):
        train_images = train_images[distributed.shard(n_global)]  # this rank's share of the images
    gen = torch.Generator().manual_seed(config.seed + rank_seed)
    stream = TrainStream(train_images, config.batch_size, gen)
    total, epochs = planned_steps(config, stream, n_global, task.auto_samples)
    plan = RunPlan(config=config, task=task, device=dev, autocast=autocast_dtype, channels_last=cl, total=total,
                   every=config.eval_every or max(1, math.ceil(total / AUTO_EVALS)),
                   progress=progress and distributed.is_main())
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
            result = _Run(student, teacher, holdout_images, plan, reshape).train(stream, augment)
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
    result.precision = precision_name(autocast_dtype)
    return result


class _Run:
    """One run: the teacher as it runs (folded, its held-out outputs cached), the judged weights, the
    optimizer and schedule, the selection of what comes back and the history of held-out checks."""

    def __init__(self, student: nn.Module, teacher: nn.Module, holdout: Any, plan: RunPlan,
                 reshape: Reshape | None = None):
        self.student, self.teacher, self.holdout, self.plan, self.reshape = student, teacher, holdout, plan, reshape
        config, dev, cl = plan.config, plan.device, plan.channels_last
        self.budget = StepBudget(plan.total, time_cap(config), plan.every)
        self.bs_eval = max(256, config.batch_size)
        first = holdout[:2] if isinstance(holdout, torch.Tensor) else first_tensor(next(iter(holdout)))[:2]
        self.example = on_device(first, dev, cl)
        # feature matching hooks the teacher's own modules; otherwise its BatchNorms are folded away
        self.runner = teacher if config.features > 0 else folded_teacher(teacher, self.example)[0]
        self.cached = None
        if isinstance(holdout, torch.Tensor):  # the teacher's held-out logits never change: compute once
            with torch.no_grad():
                self.cached = [self.runner(on_device(x, dev, cl)) for x in image_batches(holdout, self.bs_eval)]
        self.ema = WeightAverage(student, config.ema) if config.ema > 0 else None
        self.judged = self.ema.model if self.ema is not None else student  # measured by the checks; comes back
        agree0, kl0, hits0 = self.evaluate()
        self.before = (agree0, kl0)  # held-out agreement and KL of the incoming student
        self.selection = Selection(self.judged, agree0, kl0, hits0)
        self.history: list[dict[str, Any]] = [{"step": 0, "loss": None, "lr": 0.0, "train_agreement": None,
                                               "holdout_agreement": agree0, "holdout_kl": kl0, "seconds": 0.0}]
        self.opt = _optimizer(student, config)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(self.budget, config.warmup_fraction))
        self.scaler = torch.amp.GradScaler("cuda", enabled=plan.autocast == torch.float16)
        self.window_loss: list[float] = []
        self.window_agree: list[float] = []
        self.t_start = time.perf_counter()

    def evaluate(self) -> tuple[float, float, torch.Tensor]:
        p = self.plan
        return agreement_logits(self.judged, self.holdout, self.cached, self.runner, p.device, self.bs_eval,
                                p.channels_last, task=p.task)

    def check(self, step: int) -> None:
        """A held-out check at ``step``: into the history, and offered to the selection."""
        agree, kl, hits = self.evaluate()
        self.history.append({"step": step, "loss": sum(self.window_loss) / max(1, len(self.window_loss)),
                             "lr": self.opt.param_groups[0]["lr"],
                             "train_agreement": sum(self.window_agree) / max(1, len(self.window_agree)),
                             "holdout_agreement": agree, "holdout_kl": kl,
                             "seconds": time.perf_counter() - self.t_start})
        self.window_loss.clear()
        self.window_agree.clear()
        self.selection.offer(step, agree, kl, hits)

    def restage(self, step: int) -> None:
        """Cut the student now if ``reshape`` says so: the optimizer state and the average are cut alike, and the
        selection starts again from the cut weights (a check of another shape cannot come back)."""
        cut = self.reshape(step, self.budget.total, self.student) if self.reshape is not None else None
        if cut is None:
            return
        cut_student(self.student, self.opt, cut, self.plan.channels_last)
        if self.ema is not None:
            cut(self.ema.model)
            if self.plan.channels_last:
                self.ema.model.to(memory_format=torch.channels_last)
            self.ema.rebind(self.student)
        agree, kl, hits = self.evaluate()
        self.selection = Selection(self.judged, agree, kl, hits)
        self.selection.step = step
        self.history.append({"step": step, "loss": None, "lr": self.opt.param_groups[0]["lr"], "train_agreement": None,
                             "holdout_agreement": agree, "holdout_kl": kl, "stage": True,
                             "seconds": time.perf_counter() - self.t_start})
        self.reshape.measured(step, agree, kl)

    def autocast(self):
        p = self.plan
        return torch.autocast(p.device.type, dtype=p.autocast or torch.float32, enabled=p.autocast is not None)

    def teach(self, x: torch.Tensor) -> Any:
        """The teacher's output on a training batch, as a step computes it."""
        with self.autocast(), torch.no_grad():
            return self.runner(x)

    def step(self, net: nn.Module, x: torch.Tensor, t: Any, step: int,
             features: FeatureMatch | None) -> tuple[float, float] | None:
        """One optimizer step on batch ``x`` (``t``: the teacher's output on it, None: run the teacher);
        returns (loss, the batch's agreement), or None (nothing changed) when the loss is not finite on any rank."""
        p = self.plan
        with self.autocast():
            if t is None:
                with torch.no_grad():
                    t = self.runner(x)
            s = net(x)
        loss = p.task.distill_loss(s, t, float(p.config.temperature))
        if features is not None:
            loss = loss + p.config.features * features.loss()
        match = p.task.batch_agreement(s, t)
        loss_v, match_v = torch.stack([loss.detach(), match]).tolist()
        bad = torch.tensor([0.0 if math.isfinite(loss_v) else 1.0], device=p.device)
        if distributed.all_reduce_sum(bad).item() > 0:  # one rank's NaN stops them all
            return None
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        if self.ema is not None:
            self.ema.update(step)
        self.window_loss.append(loss_v)
        self.window_agree.append(match_v)
        return loss_v, match_v

    def train(self, stream: TrainStream, augment: BatchAugment) -> DistillResult:
        p, budget, student = self.plan, self.budget, self.student
        features = FeatureMatch(student, self.teacher, self.example) if p.config.features > 0 else None
        student.train()
        net = student
        if distributed.active():  # gradients averaged across ranks; held-out checks run on every rank alike
            dev = p.device
            ids = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(student, device_ids=ids)
        stopped: str | None = None
        done = 0
        ema_agree = None
        batches = iter(stream)
        pooled = None
        views, note, t_views = p.config.teacher_views, None, time.perf_counter()
        if views:  # built before the loop: its time counts against the cap, not against the time per step
            note = declined(stream, views, p.config.features)
            if note is None:
                pool, note = build_pool(stream, augment, self.teach, views, p.device, p.channels_last)
                pooled = iter(pool) if pool is not None else None
        views_seconds = time.perf_counter() - t_views
        budget.start_loop()
        t_loop, seen = time.perf_counter(), 0
        bar = _progress_bar(p.progress)
        with bar:
            bar_task = bar.add_task("distill", total=p.total, status="")
            try:
                step = 0
                while step < budget.total:
                    step += 1
                    if pooled is not None:
                        x, t = next(pooled)
                    else:
                        x, t = on_device(augment(next(batches).to(p.device, non_blocking=True)), p.device,
                                         p.channels_last), None
                    figures = self.step(net, x, t, step, features)
                    if figures is None:
                        stopped = f"non-finite loss at step {step}"
                        break
                    loss_v, match_v = figures
                    done, seen = step, seen + len(x)
                    self.restage(step)
                    ema_agree = match_v if ema_agree is None else 0.95 * ema_agree + 0.05 * match_v
                    if budget.due(step):
                        budget.check(step)
                        bar.update(bar_task, total=budget.total)
                    if step % p.every == 0 or step == budget.total:
                        self.check(step)
                    held = self.history[-1]["holdout_agreement"]
                    bar.update(bar_task, advance=1, status=f"loss {loss_v:.3f}  agree {ema_agree:.1%}  held-out {held:.1%}  "
                               f"{seen / max(time.perf_counter() - t_loop, 1e-9):,.0f} img/s")
            except KeyboardInterrupt:
                stopped = f"interrupted at step {done + 1}"
            finally:
                if features is not None:
                    features.close()
        sel = self.selection
        student.load_state_dict(sel.state)
        return DistillResult(student=student, steps=done, seconds=0.0, agreement_before=self.before[0],
                             agreement_after=sel.agreement, kl_before=self.before[1], kl_after=sel.kl,
                             best_step=sel.step, history=self.history, stopped=stopped,
                             config=p.config.to_dict(), planned_steps=budget.planned, max_minutes=budget.minutes,
                             teacher_views=views if pooled is not None else 0, views_note=note,
                             views_seconds=views_seconds,
                             images_per_second=seen / (time.perf_counter() - t_loop) if done else None)


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


def _progress_bar(enabled: bool):
    """The run's rich progress bar on stderr (disabled: draws nothing)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("distill"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled)
