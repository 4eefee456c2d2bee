"""Prove a cut: the pruned model must compute exactly what the original computes when the
removed channels are zeroed at their consumers (the layers that mix channels)."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from compress.errors import PruneError
from compress.graph import attention

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def zeroed_reference(original: nn.Module, cuts: list[dict]) -> nn.Module:
    """A copy of ``original`` whose channel-mixing layers ignore the removed input channels."""
    ref = copy.deepcopy(original).eval()
    with torch.no_grad():
        for cut in cuts:
            if cut["role"] not in ("in", "heads", "head_dim", "chan") and not cut.get("consumes"):
                continue
            removed = sorted(set(range(cut["size"])) - set(cut["keep"]))
            if not removed:
                continue
            idx = torch.as_tensor(removed, dtype=torch.long)
            if cut["role"] == "param":  # a weight a functional conv/linear reads: zero its inputs
                owner, _, attr = cut["name"].rpartition(".")
                getattr(ref.get_submodule(owner) if owner else ref, attr).index_fill_(cut["dim"], idx, 0)
                continue
            m = ref.get_submodule(cut["name"])
            if isinstance(m, nn.LayerNorm) and cut["role"] == "chan":  # opted-in LayerNorm width
                _replace(ref, cut["name"], KeptLayerNorm(m, cut["keep"]))
                continue
            if cut["role"] in ("heads", "head_dim"):
                attention.zero(m, cut["role"], removed)
                continue
            if isinstance(m, nn.Linear) or (isinstance(m, _CONV) and m.groups == 1):
                m.weight[:, idx] = 0
            elif isinstance(m, _CONV_T) and m.groups == 1:
                m.weight[idx] = 0
            # grouped convs lose whole groups: their removed inputs only feed removed outputs
    return ref


class KeptLayerNorm(nn.Module):
    """The reference for a LayerNorm that loses channels: statistics over the kept channels only
    (what the pruned LayerNorm computes); the removed channels, which no kept output reads, are 0."""

    def __init__(self, ln: nn.LayerNorm, keep: list[int]):
        super().__init__()
        self.ln = ln
        self.register_buffer("keep", torch.as_tensor(keep, dtype=torch.long))

    def forward(self, x):
        w = self.ln.weight[self.keep] if self.ln.weight is not None else None
        b = self.ln.bias[self.keep] if self.ln.bias is not None else None
        out = torch.zeros_like(x)
        out[..., self.keep] = F.layer_norm(x[..., self.keep], (len(self.keep),), w, b, self.ln.eps)
        return out


def _replace(root: nn.Module, name: str, module: nn.Module) -> None:
    owner, _, attr = name.rpartition(".")
    setattr(root.get_submodule(owner) if owner else root, attr, module)


def max_difference(a: nn.Module, b: nn.Module, example: torch.Tensor) -> float:
    with torch.no_grad():
        out_a, out_b = a.eval()(example), b.eval()(example)
    return _max_diff(out_a, out_b)


def _max_diff(x, y) -> float:
    if isinstance(x, torch.Tensor):
        if x.shape != y.shape:
            return float("inf")
        return float((x.float() - y.float()).abs().max()) if x.numel() else 0.0
    if isinstance(x, (list, tuple)):
        return max((_max_diff(p, q) for p, q in zip(x, y)), default=0.0)
    if isinstance(x, dict):
        return max((_max_diff(x[k], y[k]) for k in x), default=0.0)
    return 0.0


def check_cut(original: nn.Module, pruned: nn.Module, cuts: list[dict], example: torch.Tensor,
              *, tolerance: float = 1e-4) -> float:
    """Raise PruneError unless ``pruned`` matches the zeroed original (relative to output scale)."""
    ref = zeroed_reference(original, cuts)
    try:
        diff = max_difference(ref, pruned, example)
    except Exception as err:
        raise PruneError(f"the pruned model fails to run: {type(err).__name__}: {err}",
                         "this is a bug in the dependency graph: please report it; nothing was written") from err
    with torch.no_grad():
        scale = max(1.0, _max_abs(ref(example)))
    if not diff <= tolerance * scale:
        raise PruneError(
            f"the pruned model differs from the original with the removed channels zeroed (max diff {diff:.3g})",
            "this is a bug in the dependency graph: please report it; nothing was written",
        )
    return diff


def _max_abs(x) -> float:
    if isinstance(x, torch.Tensor):
        return float(x.abs().max()) if x.numel() else 0.0
    if isinstance(x, (list, tuple)):
        return max((_max_abs(v) for v in x), default=0.0)
    if isinstance(x, dict):
        return max((_max_abs(v) for v in x.values()), default=0.0)
    return 0.0
