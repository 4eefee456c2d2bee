"""Repair a cut model without labels and without training: layer-wise least-squares reconstruction.

A cut removes channels; every layer that read them (a conv or linear that lost *input* channels, and every
such layer after it, whose inputs moved too) now computes something else. Here each of those layers, in the
order the model runs them, is refitted so that on the calibration images its output reproduces the
original's same layer (He et al. 2017, ThiNet): its input comes from the cut model as already repaired up to
it, its target from the original, and the weights are the ridge least-squares solution of the normal
equations ``X^T X``, ``X^T Y`` accumulated over batches (im2col for a kernel larger than 1x1; grouped and
depthwise convs keep their weights: each of their channels reads only itself). The constant part of what
the removed channels gave goes into the layer's bias, or into the running mean of the BatchNorm that
normalises its output when it has none.

The target is the layer's own output before its norm: a BatchNorm scales each output channel by a constant,
and each channel is its own least-squares problem, so fitting before or after the norm gives the same
weights. The ridge is relative (``ridge`` times the mean diagonal of ``X^T X``), raised by tens per layer
while the held-out images' error falls, so a layer with few samples (a classifier over a few hundred images)
cannot overfit. Each layer's refit is kept only where it
lowers the reconstruction error on the held-out images (computed in closed form from their own normal
equations, in the same pass), and the whole repair only where held-out agreement with the original does
not fall. Measured: benchmarks/RESULTS.md, "Repair after the cut".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from compress.devices import device_of
from compress.recover.metrics import agreement, image_batches

REPAIR_IMAGES = 256  # fitting images per layer
REPAIR_RIDGE = 1e-3  # times the mean diagonal of X^T X: the smallest ridge tried
RIDGE_STEPS = range(4)  # ridge * 10**k tried per layer, judged on the held-out images' normal equations
ROWS_PER_IMAGE = 256  # output positions sampled per image and layer (all of them for a linear or a small map)
JUDGE = "kl"  # the whole repair kept where the held-out KL divergence against the original falls ...
AGREEMENT_SLACK = 0.05  # ... and held-out top-1 agreement does not fall by more than this (a guard only)
_KINDS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


class _Stop(Exception):
    """Raised by a capture hook: the rest of the forward pass is not needed."""


@dataclass
class RepairResult:
    agreement_before: float
    kl_before: float
    agreement_after: float | None = None
    kl_after: float | None = None
    layers: list[str] = field(default_factory=list)  # refitted and kept
    refused: list[str] = field(default_factory=list)  # refitted, but no better on the held-out images
    kept: bool = False  # the whole repair kept (held-out agreement did not fall)
    images: int = 0
    seconds: float = 0.0

    def note(self) -> str:
        """What was decided and why, in one sentence for the user."""
        after = "-" if self.agreement_after is None else f"{self.agreement_after:.1%}"
        figures = f"held-out agreement {self.agreement_before:.1%} -> {after}"
        if self.kept:
            return f"{len(self.layers)} layers refitted to the original's outputs: {figures}"
        if self.layers:
            return f"kept the cut weights: the refit of {len(self.layers)} layers lowered {figures}"
        return f"kept the cut weights: no layer's refit lowered its held-out error ({figures})"


def repairable(module: nn.Module) -> bool:
    """A conv or linear whose output channels mix its input channels (not grouped, zero padding)."""
    if not isinstance(module, _KINDS):
        return False
    if isinstance(module, nn.Linear):
        return True
    return module.groups == 1 and module.padding_mode == "zeros" and not isinstance(module.padding, str)


@torch.no_grad()
def _order(model: nn.Module, example: torch.Tensor) -> tuple[list[str], dict[str, str], dict[str, tuple[str, int]]]:
    """(the repairable layers' names in the order a forward pass runs them, {layer: the BatchNorm that
    takes its output and nothing else}, {layer: (the outermost plain ``nn.Sequential`` holding it that runs once
    on one tensor, the index of its child holding the layer)}), from one pass over ``example``."""
    names = {m: n for n, m in model.named_modules()}
    order: list[str] = []
    produced: dict[int, tuple[str, torch.Tensor]] = {}
    follows: dict[str, str] = {}
    calls: dict[str, int] = {}
    handles = []

    def count(m, inp):
        one = len(inp) == 1 and isinstance(inp[0], torch.Tensor)
        calls[names[m]] = calls.get(names[m], 0) + (1 if one else 2)

    def after(m, _inp, out):
        name = names[m]
        if name not in order:
            order.append(name)
        if isinstance(out, torch.Tensor):
            produced[id(out)] = (name, out)  # the tensor held, so that its id is not reused by a later one

    def norm(m, inp):
        held = produced.get(id(inp[0])) if inp and isinstance(inp[0], torch.Tensor) else None
        src = held[0] if held is not None and held[1] is inp[0] else None
        if src is not None and names[m] and src not in follows:
            follows[src] = names[m]

    for m in model.modules():
        if repairable(m):
            handles.append(m.register_forward_hook(after))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            handles.append(m.register_forward_pre_hook(norm))
        elif isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward:
            handles.append(m.register_forward_pre_hook(count))
    try:
        model(example)
    finally:
        for h in handles:
            h.remove()
    chains = {}
    for name in order:
        parts = name.split(".")
        for depth in range(len(parts)):  # outermost first: the model itself, then down
            seq = ".".join(parts[:depth])
            if calls.get(seq) == 1:
                chains[name] = (seq, list(model.get_submodule(seq)._modules).index(parts[depth]))
                break
    return order, follows, chains


class _Feed:
    """The inputs of one child of a Sequential, in the student and in the original, on every batch: a layer inside
    that child is reached by running the child alone, and the feed moves to the next child once (the student's
    with its repaired weights), so a repair costs about one forward pass, not one per layer."""

    def __init__(self, student, original, seq: str, batches: list[torch.Tensor]):
        self.seq, self.index = seq, 0
        self.parts = (student.get_submodule(seq), original.get_submodule(seq))
        self.xs = [[_input_of(model, seq, x) for x in batches] for model in (student, original)]

    def move_to(self, index: int) -> None:
        while self.index < index:
            for part, xs in zip(self.parts, self.xs):
                child = part[self.index]
                xs[:] = [child(x) for x in xs]
            self.index += 1

    def pairs(self, name: str, student, original, start: int, stop: int):
        """(the student's input of ``name``, the original's output of it) on batches ``start:stop``."""
        s_part, o_part = self.parts
        for xs, xo in zip(self.xs[0][start:stop], self.xs[1][start:stop]):
            inp, out = _capture_in(s_part[self.index], student.get_submodule(name), xs, "in"), None
            out = _capture_in(o_part[self.index], original.get_submodule(name), xo, "out")
            yield inp, out


def _input_of(model: nn.Module, seq: str, x: torch.Tensor) -> torch.Tensor:
    return _capture_in(model, model.get_submodule(seq), x, "in", pre=True)


def _capture_in(run: nn.Module, layer: nn.Module, x: torch.Tensor, what: str, pre: bool = False) -> torch.Tensor:
    """Run ``run`` on ``x`` until ``layer``: its input (``what="in"``) or output, the rest of the pass not run."""
    got = []

    def hook(_m, inp, out=None):
        got.append(inp[0] if what == "in" else out)
        raise _Stop

    handle = layer.register_forward_pre_hook(hook) if pre else layer.register_forward_hook(hook)
    try:
        run(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    return got[0]


def _rows(module: nn.Module, x: torch.Tensor, pick: torch.Tensor | None) -> torch.Tensor:
    """The layer's input as rows of a matrix (positions x input features), at positions ``pick``."""
    if isinstance(module, nn.Linear):
        rows = x.reshape(-1, x.shape[-1])
    elif isinstance(module, nn.Conv2d):
        if module.kernel_size == (1, 1) and module.padding == (0, 0):
            x = x[:, :, ::module.stride[0], ::module.stride[1]]
            rows = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
        else:
            cols = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
            rows = cols.transpose(1, 2).reshape(-1, cols.shape[1])
    else:  # Conv1d / Conv3d: unfold is 2-d only; as a (N, C*k, L) through conv with identity kernels
        k = module.weight.shape[2:]
        eye = torch.eye(module.in_channels * int(torch.tensor(k).prod()), dtype=x.dtype, device=x.device)
        eye = eye.reshape(-1, module.in_channels, *k)
        conv = F.conv1d if isinstance(module, nn.Conv1d) else F.conv3d
        cols = conv(x, eye, None, module.stride, module.padding, module.dilation)
        rows = cols.flatten(2).transpose(1, 2).reshape(-1, cols.shape[1])
    return rows if pick is None else rows[pick]


def _targets(y: torch.Tensor, module: nn.Module, keep: Any, pick: torch.Tensor | None) -> torch.Tensor:
    if keep is not None:
        y = y.index_select(-1 if isinstance(module, nn.Linear) else 1, torch.as_tensor(keep, device=y.device))
    rows = y.reshape(-1, y.shape[-1]) if isinstance(module, nn.Linear) else y.flatten(2).transpose(1, 2).reshape(-1, y.shape[1])
    return rows if pick is None else rows[pick]


class _Normal:
    """Normal equations of one layer over a stream of (rows, targets): X^T X, X^T Y, sum of Y^2 (float64)."""

    def __init__(self):
        self.xx = self.xy = self.yy = None
        self.n = 0

    def add(self, x: torch.Tensor, y: torch.Tensor, intercept: bool) -> None:
        x, y = x.float(), y.float()  # each batch's products in float32, their sum in float64
        if intercept:
            x = torch.cat([x, x.new_ones(x.shape[0], 1)], 1)
        xx, xy, yy = (x.T @ x).double(), (x.T @ y).double(), (y.double() ** 2).sum(0)
        if self.xx is None:
            self.xx, self.xy, self.yy = xx, xy, yy
        else:
            self.xx += xx
            self.xy += xy
            self.yy += yy
        self.n += x.shape[0]

    def error(self, w: torch.Tensor) -> float:
        """sum ||X w - Y||^2 over the rows seen, from the normal equations alone."""
        return float(((w * (self.xx @ w)).sum(0) - 2 * (w * self.xy).sum(0) + self.yy).sum())


def _current(module: nn.Module, intercept: bool, shift: torch.Tensor | None) -> torch.Tensor:
    """The layer's weights as the (features [+1], outputs) matrix the rows multiply; ``shift``: for a layer
    without bias, what its norm's running mean differs from the original's by (original - current)."""
    w = module.weight.detach().reshape(module.weight.shape[0], -1).T.double()
    if not intercept:
        return w
    b = module.bias.detach().double() if module.bias is not None else shift.double()
    return torch.cat([w, b[None]], 0)


def _solve(fit: _Normal, ridge: float) -> torch.Tensor:
    d = fit.xx.shape[0]
    lam = ridge * float(fit.xx.diagonal().mean()) + 1e-12
    a = fit.xx + lam * torch.eye(d, dtype=fit.xx.dtype, device=fit.xx.device)
    return torch.linalg.solve(a, fit.xy)


def _whole(student: nn.Module, original: nn.Module, name: str, batches: list[torch.Tensor]):
    """(the input of ``name`` in ``student``, its output in ``original``) per batch, each pass stopping there:
    for a layer outside any Sequential that runs once."""
    for x in batches:
        yield (_capture_in(student, student.get_submodule(name), x, "in"),
               _capture_in(original, original.get_submodule(name), x, "out"))


def _positions(n_rows: int, per_image: int, images: int, gen: torch.Generator) -> torch.Tensor | None:
    if n_rows <= per_image * images:
        return None
    per = n_rows // images
    offsets = torch.arange(images)[:, None] * per
    return (offsets + torch.randint(0, per, (images, per_image), generator=gen)).reshape(-1)


def _fill(pairs, module, keep, intercept, gen, normal: _Normal) -> None:
    for inp, out in pairs:
        rows = _rows(module, inp, None) if isinstance(module, nn.Linear) or _small(module, inp) else None
        pick = None
        if rows is None:  # sample output positions per image before the (large) im2col
            n_out = out.shape[0] * out[0, 0].numel()
            pick = _positions(n_out, ROWS_PER_IMAGE, out.shape[0], gen)
            rows = _rows(module, inp, pick)
        normal.add(rows, _targets(out, module, keep, pick), intercept)


def _small(module: nn.Module, x: torch.Tensor) -> bool:
    return x[0, 0].numel() <= ROWS_PER_IMAGE


@torch.no_grad()
def repair_cut(student: nn.Module, original: nn.Module, images: Any, holdout: Any, *, keep_out: dict[str, Any],
               device: str | torch.device = "cpu", max_images: int = REPAIR_IMAGES,
               ridge: float = REPAIR_RIDGE, batch_size: int = 32, task=None, scope: str = "after",
               ridge_steps: int = len(RIDGE_STEPS), layer_check: bool = True, judge: str = JUDGE,
               say: Callable[[str], None] | None = None) -> RepairResult:
    """Refit ``student``'s layers (in place) to reproduce ``original`` on ``images`` (up to ``max_images``).

    ``keep_out``: {layer: the original output channels it kept} for layers whose outputs were cut. ``scope``: ``"after"`` refits every repairable layer from the
    first one that lost input channels on (their inputs all moved), ``"consumers"`` only those that lost
    input channels. ``ridge_steps``: how many ridges (``ridge`` times 1, 10, ...) are tried per layer (1: fixed);
    ``layer_check``: refuse a layer's refit where its held-out error does not fall; ``judge``: what decides the
    whole repair, ``"kl"`` (held-out KL divergence falls, agreement not down by more than ``AGREEMENT_SLACK``)
    or ``"agreement"`` (held-out agreement does not fall). Returns the figures."""
    started = time.perf_counter()
    home = device_of(student)
    modes = {m: m.training for m in (*student.modules(), *original.modules())}
    student.to(device).eval(), original.to(device).eval()
    fit_images = _collect(images, max_images)
    held = _collect(holdout, max_images)
    before, kl_before = agreement(student, original, held, device=device, task=task)
    result = RepairResult(agreement_before=before, kl_before=kl_before, images=fit_images.shape[0])
    saved = {k: v.clone() for k, v in student.state_dict().items()}
    try:
        order, follows, chains = _order(student, fit_images[:2].to(device))
        sizes = {n: m.weight.shape[1] for n, m in original.named_modules() if isinstance(m, _KINDS)}
        consumers = [n for n in order if student.get_submodule(n).weight.shape[1] != sizes.get(n)]
        if scope == "consumers":
            todo = consumers
        else:
            todo = order[order.index(consumers[0]):] if consumers else []
        gen = torch.Generator().manual_seed(0)
        batches = [*_split(fit_images, batch_size, device), *_split(held, batch_size, device)]
        n_fit = len(range(0, fit_images.shape[0], batch_size))
        feed = None
        for i, name in enumerate(todo):
            module = student.get_submodule(name)
            norm = student.get_submodule(follows[name]) if name in follows else None
            intercept = module.bias is not None or norm is not None
            fit, check = _Normal(), _Normal()
            if name in chains:
                seq, index = chains[name]
                if feed is None or feed.seq != seq or feed.index > index:
                    feed = None  # free the last one first
                    feed = _Feed(student, original, seq, batches)
                feed.move_to(index)
                pairs = lambda a, b: feed.pairs(name, student, original, a, b)  # noqa: E731
            else:
                pairs = lambda a, b: _whole(student, original, name, batches[a:b])  # noqa: E731
            _fill(pairs(0, n_fit), module, keep_out.get(name), intercept, gen, fit)
            _fill(pairs(n_fit, len(batches)), module, keep_out.get(name), intercept, gen, check)
            stats = _norm_stats(original, follows.get(name), keep_out.get(name)) if norm is not None else None
            if stats is not None and stats[0].shape != norm.running_mean.shape:  # not this layer's norm after all
                result.refused.append(name)
                continue
            shift = stats[0] - norm.running_mean if stats is not None else None
            now = _current(module, intercept, shift)
            err_now = check.error(now)
            # the ridge, from ``ridge`` up by tens, whichever the held-out images' error is lowest with
            err_new, new = min(((check.error(w), w) for w in (_solve(fit, ridge * 10 ** k) for k in range(ridge_steps))),
                               key=lambda pair: pair[0])
            if say:
                say(f"repair {i + 1}/{len(todo)} {name}: held-out error {err_now:.4g} -> {err_new:.4g}")
            if layer_check and not err_new < err_now:
                result.refused.append(name)
                continue
            _write(module, norm, stats, new, intercept)
            result.layers.append(name)
        after, kl_after = agreement(student, original, held, device=device, task=task)
        result.agreement_after, result.kl_after = after, kl_after
        result.kept = bool(result.layers) and _better(judge, before, kl_before, after, kl_after)
        if not result.kept:
            student.load_state_dict(saved)
    except BaseException:
        student.load_state_dict(saved)
        raise
    finally:
        for m, mode in modes.items():
            m.training = mode
        student.to(home), original.to(home)
        result.seconds = time.perf_counter() - started
    return result


def _better(judge: str, before: float, kl_before: float, after: float, kl_after: float) -> bool:
    """Whether the repaired model is the better one on the held-out images."""
    if judge == "agreement":
        return after >= before
    return kl_after < kl_before and after >= before - AGREEMENT_SLACK


def _norm_stats(original: nn.Module, name: str, keep: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The original norm's running mean and variance, at the channels the cut kept."""
    norm = original.get_submodule(name)
    mean, var = norm.running_mean.detach(), norm.running_var.detach()
    if keep is not None:
        index = torch.as_tensor(keep, device=mean.device)
        mean, var = mean[index], var[index]
    return mean, var


def _write(module: nn.Module, norm: nn.Module | None, stats, w: torch.Tensor, intercept: bool) -> None:
    if intercept:
        w, b = w[:-1], w[-1]
        if module.bias is not None:
            module.bias.copy_(b.to(module.bias.dtype))
        else:  # the target is the original's output before its norm: BN(conv(x) + b) is the original norm's
            # statistics with the mean moved by -b
            norm.running_mean.copy_((stats[0] - b).to(norm.running_mean.dtype))
            norm.running_var.copy_(stats[1].to(norm.running_var.dtype))
    module.weight.copy_(w.T.reshape(module.weight.shape).to(module.weight.dtype))


def _collect(images: Any, max_images: int) -> torch.Tensor:
    out, seen = [], 0
    for x in image_batches(images, 256):
        out.append(x[: max_images - seen])
        seen += out[-1].shape[0]
        if seen >= max_images:
            break
    return torch.cat(out)


def _split(images: torch.Tensor, batch_size: int, device) -> list[torch.Tensor]:
    return [images[i:i + batch_size].to(device) for i in range(0, images.shape[0], batch_size)]
