"""First-order Taylor importance from activation gradients.

Random-gradient variants (Sapkota & Bhattarai, arXiv 2310.20203) need no labels: per image,
draw g ~ N(0, I) over the logits, scale it to unit L2 norm and backpropagate it instead of a
loss gradient. A model with several outputs (a segmenter's ``out`` and ``aux`` maps, a detector's
heads) gets one such draw per output tensor, each of unit norm per image, backpropagated together,
so every output counts alike whatever its size; the first output's draw is the single-output one. For a channel with activation ``a`` (a norm's output, else the conv/linear
output) take ``s = sum_hw a * da`` per image; ``taylor-sq`` scores mean(s^2), ``taylor-abs``
mean(|s|). The labelled ``taylor`` baseline (Molchanov et al.) backpropagates the
cross-entropy loss and scores |mean(s)|.

Cost: one forward and one activation-only backward per batch per draw (parameters need no
gradient); activations are dropped after each batch, scores accumulate in per-channel sums, so
peak memory does not grow with the number of images.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from compress import distributed
from compress.devices import resolve_device
from compress.errors import UsageError
from compress.graph.groups import Groups
from compress.hooks import eval_mode, forward_hooks, frozen_parameters
from compress.prune.importance.base import ImportanceConfig, ImportanceResult
from compress.progress import progress_bar


class _Sums:
    """Per-channel running sums of s, |s| and s^2 for one probed activation."""

    def __init__(self, axis: int, channels: int, device):
        self.axis = axis
        self.s = torch.zeros(channels, dtype=torch.float64, device=device)
        self.abs = torch.zeros_like(self.s)
        self.sq = torch.zeros_like(self.s)

    def add(self, a: torch.Tensor, grad: torch.Tensor) -> None:
        dims = [d for d in range(a.dim()) if d not in (0, self.axis)]
        s = (a * grad).sum(dims) if dims else a * grad  # (batch, channels)
        s = s.double()
        self.s += s.sum(0)
        self.abs += s.abs().sum(0)
        self.sq += (s * s).sum(0)


class _Tap(torch.autograd.Function):
    """Identity that keeps its input and, in backward, hands (a, da) to the sums."""

    @staticmethod
    def forward(ctx, a, sums):
        ctx.save_for_backward(a)
        ctx.sums = sums
        return a.clone()  # later in-place ops (ReLU(inplace)) must not touch the saved a

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        ctx.sums.add(a.detach(), grad.detach())
        return grad, None


def _batches(images, batch_size: int):
    """Yield (images, global indices) of this rank's share (all of them in a single process)
    from a tensor or a loader of (tensor, index) batches."""
    if isinstance(images, torch.Tensor):
        mine = distributed.shard(len(images))
        for start in range(0, len(mine), batch_size):
            idx = mine[start:start + batch_size]
            yield images[idx], idx
        return
    for batch in images:
        if not isinstance(batch, (list, tuple)):
            raise UsageError("the importance loader must yield (images, indices) batches")
        keep = batch[1] % distributed.world() == distributed.rank()
        if keep.any():
            yield batch[0][keep], batch[1][keep]


def random_gradient(logits: torch.Tensor, indices: torch.Tensor, seed: int, draw: int, output: int = 0) -> torch.Tensor:
    """Unit-norm Gaussian gradient per sample, seeded by the image index (not by batch or rank) and, for
    the second and later outputs of a model, by the output's position."""
    rows = []
    for i in indices.tolist():
        base = (seed * 1_000_003 + int(i)) * 1_009 + draw
        gen = torch.Generator().manual_seed(base if output == 0 else base * 101 + output)
        rows.append(torch.randn(logits.shape[1:], generator=gen, dtype=torch.float32))
    g = torch.stack(rows).to(logits.device, logits.dtype)
    norms = g.flatten(1).norm(dim=1).clamp_min(1e-12)
    return g / norms.view(-1, *([1] * (g.dim() - 1)))


def _single_logits(output) -> list[torch.Tensor]:
    if not isinstance(output, torch.Tensor):
        raise UsageError("the model's output is not a single tensor of logits",
                         "importance needs a classifier-style output, or pass the task's outputs")
    return [output]


def backward_random(tensors: list[torch.Tensor], idx: torch.Tensor, seed: int, draws: int) -> None:
    """Backpropagate a unit-norm random direction per image through every output tensor, ``draws`` times."""
    tensors = [t for t in tensors if t.requires_grad]
    if not tensors:
        raise UsageError("no output of the model depends on its input", "importance needs a differentiable output")
    for draw in range(draws):
        grads = [random_gradient(t.detach(), idx, seed, draw, output=k) for k, t in enumerate(tensors)]
        torch.autograd.backward(tensors, grads, retain_graph=draw + 1 < draws)


def _run(model, groups: Groups, images, config: ImportanceConfig, *, labels=None, say=None,
         outputs=None) -> tuple[dict, int, str]:
    device = resolve_device(config.device)
    if say is not None:
        say(f"importance: {config.name} on {device.type.upper()}" + ("" if device.type == "cuda" else " (no CUDA GPU found)"))
    model.to(device)
    sums: dict[str, _Sums] = {}
    probes = groups.graph.probes
    for p in probes:
        sums.setdefault(p.module, _Sums(p.axis, p.ids.shape[-1], device))
    hooks = {name: (lambda m, inp, out, s=s: _Tap.apply(out, s)) for name, s in sums.items()}
    count = 0
    total = len(images) if isinstance(images, torch.Tensor) else len(getattr(images, "dataset", []))
    with eval_mode(model), frozen_parameters(model), forward_hooks(model, hooks), \
            progress_bar(f"importance ({config.name})", total or None, enabled=config.progress) as bar:
        for x, idx in _batches(images, config.batch_size):
            x = x.to(device).requires_grad_(True)
            tensors = (outputs or _single_logits)(model(x))
            if config.name == "taylor":
                target = labels[idx].to(device)
                F.cross_entropy(tensors[0].float(), target, reduction="sum").backward()
            else:
                backward_random(tensors, idx, config.seed, config.draws)
            count += len(x)
            bar.advance(len(x) * distributed.world())
            del tensors, x
    # every score is a sum of per-image terms: summing the ranks' sums gives the single-process result
    for s in sums.values():
        for t in (s.s, s.abs, s.sq):
            distributed.all_reduce_sum(t)
    count = int(distributed.all_reduce_sum(torch.tensor([count], dtype=torch.float64, device=device)).item())
    return sums, count, device.type


def _scores(groups: Groups, sums: dict, count: int, draws: int, kind: str) -> np.ndarray:
    scores = np.full(len(groups.graph.sets), np.nan)
    n = max(count * draws, 1)
    for p in {p.module: p for p in groups.graph.probes}.values():  # a module called twice: one sum
        s = sums[p.module]
        value = {"sq": s.sq / n, "abs": s.abs / n, "mean": (s.s / n).abs()}[kind].cpu().numpy()
        for ids in np.atleast_2d(p.ids):  # a head probe: each channel scores its head and its dim
            scores[ids] = np.nan_to_num(scores[ids], nan=0.0)
            np.add.at(scores, ids, value)
    return scores


def _make(kind: str, label: str):
    def estimator(model, groups, images, config, *, labels=None, say=None, outputs=None) -> ImportanceResult:
        if label == "taylor" and labels is None:
            raise UsageError("the labelled 'taylor' importance needs labels", "pass --labels FILE.csv (file,class_index)")
        sums, count, device = _run(model, groups, images, config, labels=labels, say=say, outputs=outputs)
        draws = 1 if label == "taylor" else config.draws
        return ImportanceResult(label, _scores(groups, sums, count, draws, kind), images=count, seconds=0.0, device=device)

    return estimator


taylor_sq = _make("sq", "taylor-sq")
taylor_abs = _make("abs", "taylor-abs")
taylor_labelled = _make("mean", "taylor")
