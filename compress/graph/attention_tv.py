"""torchvision's window attentions as prunable layers: Swin's ``ShiftedWindowAttention`` and
MaxViT's ``RelativePositionalMultiHeadAttention``.

Both pack q/k/v as rows ``[3][heads][head_dim]`` of one Linear and add a relative-position bias
table with one column per head; both derive the attention width from their input width in their
own forward, so a cut one becomes a ``Pruned*`` subclass (same parameters and state dict) whose
forward uses ``num_heads x head_dim`` and the original softmax scale. Swin v2 (cosine attention,
a bias MLP shared by all heads) and any other subclass are not handled: they stay protected.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from compress.graph.slicing import set_param


class PrunedShiftedWindowAttention(nn.Module):
    """torchvision ShiftedWindowAttention after a head / head-width cut; its class is swapped in
    place, so it keeps the original's attributes plus ``head_dim`` and ``attn_scale``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        ws, shift = self.window_size, list(self.shift_size)
        x = F.pad(x, (0, 0, 0, (ws[1] - w % ws[1]) % ws[1], 0, (ws[0] - h % ws[0]) % ws[0]))
        _, ph, pw, _ = x.shape
        shift = [0 if ws[i] >= (ph, pw)[i] else shift[i] for i in range(2)]
        if sum(shift) > 0:
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        nw = (ph // ws[0]) * (pw // ws[1])
        x = x.view(b, ph // ws[0], ws[0], pw // ws[1], ws[1], c).permute(0, 1, 3, 2, 4, 5).reshape(b * nw, -1, c)
        n, heads, dims = x.size(1), self.num_heads, self.head_dim
        q, k, v = self.qkv(x).reshape(b * nw, n, 3, heads, dims).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q * self.attn_scale).matmul(k.transpose(-2, -1)) + self.get_relative_position_bias()
        if sum(shift) > 0:
            attn = attn.view(b, nw, heads, n, n) + _shift_mask(x, ph, pw, ws, shift).unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, heads, n, n)
        attn = F.dropout(F.softmax(attn, dim=-1), p=self.attention_dropout, training=self.training)
        x = attn.matmul(v).transpose(1, 2).reshape(b * nw, n, heads * dims)
        x = F.dropout(self.proj(x), p=self.dropout, training=self.training)
        x = x.view(b, ph // ws[0], pw // ws[1], ws[0], ws[1], c).permute(0, 1, 3, 2, 4, 5).reshape(b, ph, pw, c)
        if sum(shift) > 0:
            x = torch.roll(x, shifts=(shift[0], shift[1]), dims=(1, 2))
        return x[:, :h, :w, :].contiguous()


def _shift_mask(x: torch.Tensor, ph: int, pw: int, ws, shift) -> torch.Tensor:
    """torchvision's mask of the shifted windows: -100 between tokens from different regions."""
    mask = x.new_zeros((ph, pw))
    count = 0
    for hs in ((0, -ws[0]), (-ws[0], -shift[0]), (-shift[0], None)):
        for wsl in ((0, -ws[1]), (-ws[1], -shift[1]), (-shift[1], None)):
            mask[hs[0]:hs[1], wsl[0]:wsl[1]] = count
            count += 1
    mask = mask.view(ph // ws[0], ws[0], pw // ws[1], ws[1]).permute(0, 2, 1, 3).reshape(-1, ws[0] * ws[1])
    mask = mask.unsqueeze(1) - mask.unsqueeze(2)
    return mask.masked_fill(mask != 0, float(-100.0)).masked_fill(mask == 0, float(0.0))


class PrunedRelativeAttention(nn.Module):
    """torchvision MaxViT RelativePositionalMultiHeadAttention after a cut: the heads' output is
    ``n_heads x head_dim`` wide, not the input width (``scale_factor`` is the original's)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, g, p, _ = x.shape
        heads, dims = self.n_heads, self.head_dim
        q, k, v = (t.reshape(b, g, p, heads, dims).permute(0, 1, 3, 2, 4) for t in self.to_qkv(x).chunk(3, dim=-1))
        attn = F.softmax(q.matmul((k * self.scale_factor).transpose(-2, -1)) + self.get_relative_positional_bias(),
                         dim=-1)
        return self.merge(attn.matmul(v).permute(0, 1, 3, 2, 4).reshape(b, g, p, heads * dims))


_CLASSES: dict[str, type] = {}
_BASES = {"PrunedShiftedWindowAttention": "torchvision.models.swin_transformer.ShiftedWindowAttention",
          "PrunedRelativeAttention": "torchvision.models.maxvit.RelativePositionalMultiHeadAttention"}


def _pruned_class(pruned: type, base: type) -> type:
    """``pruned`` over ``base``, made once (torchvision is imported only by the models that use it)
    and named in this module, so a pruned model pickles and unpickles (see ``__getattr__``)."""
    name = f"{pruned.__name__}_{base.__name__}"
    if name not in _CLASSES:
        _CLASSES[name] = type(name, (pruned, base), {"__module__": __name__, "__qualname__": name})
    return _CLASSES[name]


def _swap(module: nn.Module, pruned: type) -> None:
    if not isinstance(module, pruned):
        module.__class__ = _pruned_class(pruned, type(module))


def __getattr__(name: str) -> type:
    """Unpickling a pruned model in a fresh process: make its class again."""
    import importlib

    for pruned in (PrunedShiftedWindowAttention, PrunedRelativeAttention):
        module, _, cls = _BASES[pruned.__name__].rpartition(".")
        if name == f"{pruned.__name__}_{cls}":
            return _pruned_class(pruned, getattr(importlib.import_module(module), cls))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class PackedQKV:
    """Attention with one packed q/k/v projection (rows [3][heads][dim]) and one output projection;
    ``QKV`` and ``OUT`` name the two Linear attributes (timm's Attention, torchvision's windows)."""

    QKV, OUT = "qkv", "proj"

    def io(self, name, m):
        qkv, out = getattr(m, self.QKV), getattr(m, self.OUT)
        return (f"{name}.{self.QKV}", qkv, qkv.in_features), (f"{name}.{self.OUT}", out, out.out_features)

    def weights(self, m):
        qkv = getattr(m, self.QKV)
        return qkv.weight, qkv.bias, getattr(m, self.OUT)

    def packed(self, m):
        """(module, weight name, bias name) of the packed q/k/v rows."""
        return getattr(m, self.QKV), "weight", "bias"


class TorchvisionSwin(PackedQKV):
    """torchvision.models.swin_transformer.ShiftedWindowAttention (Swin v1): input [B, H, W, C]."""

    PRUNED, HEADS, CALL = PrunedShiftedWindowAttention, "num_heads", "window attention"

    def unsupported(self, m, node, args, kwargs) -> str:
        h, d = self.shape(m)
        qkv, out = getattr(m, self.QKV), getattr(m, self.OUT)
        if len(args) != 1 or kwargs:
            return f"{self.CALL} called with extra arguments"
        if qkv.out_features != 3 * h * d or out.in_features != h * d:
            return f"attention widths do not match {self.HEADS} x head_dim"
        if not isinstance(m, self.PRUNED) and qkv.in_features != h * d:
            return f"attention widths do not match {self.HEADS} x head_dim"
        if m.relative_position_bias_table.shape[1] != h:
            return "relative position bias table is not one column per head"
        return ""

    def probe(self, name):
        return None  # the heads meet proj inside a function: weights score them

    def shape(self, m) -> tuple[int, int]:
        if isinstance(m, PrunedShiftedWindowAttention):
            return m.num_heads, m.head_dim
        return m.num_heads, m.qkv.out_features // (3 * m.num_heads)

    def extent(self, m, shape, batch: int) -> tuple[int, int]:
        """(tokens per sample after padding to whole windows, tokens per window)."""
        ws = m.window_size
        padded = [math.ceil(shape[1 + i] / ws[i]) * ws[i] for i in range(2)]
        return padded[0] * padded[1] * (shape[0] // max(batch, 1)), ws[0] * ws[1]

    def rewrite(self, m, heads: list[int], dims: int, rows: int) -> None:
        if not isinstance(m, PrunedShiftedWindowAttention):
            h, d = self.shape(m)
            m.head_dim, m.attn_scale = d, float(d) ** -0.5
            _swap(m, PrunedShiftedWindowAttention)
        m.qkv.out_features, m.proj.in_features = rows, len(heads) * dims
        set_param(m, "relative_position_bias_table", m.relative_position_bias_table[:, heads])
        m.num_heads, m.head_dim = len(heads), dims


class TorchvisionMaxVit(TorchvisionSwin):
    """torchvision.models.maxvit.RelativePositionalMultiHeadAttention: input [B, G, P, D], attention
    over the P tokens of each partition."""

    QKV, OUT = "to_qkv", "merge"
    PRUNED, HEADS, CALL = PrunedRelativeAttention, "n_heads", "attention"

    def shape(self, m) -> tuple[int, int]:
        return m.n_heads, m.head_dim

    def extent(self, m, shape, batch: int) -> tuple[int, int]:
        return math.prod(shape) // shape[-1] // max(batch, 1), shape[-2]

    def rewrite(self, m, heads: list[int], dims: int, rows: int) -> None:
        _swap(m, PrunedRelativeAttention)
        m.to_qkv.out_features, m.merge.in_features = rows, len(heads) * dims
        set_param(m, "relative_position_bias_table", m.relative_position_bias_table[:, heads])
        m.n_heads, m.head_dim = len(heads), dims


def handler(module: nn.Module):
    """The handler of a torchvision attention module, or None."""
    base = type(module).__mro__[2] if isinstance(module, (PrunedShiftedWindowAttention, PrunedRelativeAttention)) \
        else type(module)  # exactly these classes: a subclass (Swin v2) computes something else
    name = f"{base.__module__}.{base.__qualname__}"
    if name == "torchvision.models.swin_transformer.ShiftedWindowAttention":
        return TorchvisionSwin()
    if name == "torchvision.models.maxvit.RelativePositionalMultiHeadAttention":
        return TorchvisionMaxVit()
    return None
