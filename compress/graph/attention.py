"""Multi-head attention as one layer: whole heads and head width are prunable structures.

A known attention module is traced as a leaf and handled here in one place: its channel rule
(input -> ``qkv:in``, output <- ``proj:out``, and two structures of its own: ``heads`` and
``head_dim``, the same dims removed in every head), its MAC facts, the surgery (qkv rows,
proj columns, ``num_heads``/``head_dim``/``attn_dim`` rewritten so the model runs its own code
and reloads), and the proof's zeroing (the removed q/k/v rows produce zeros: a zero q/k dim
adds nothing to q.k, a zero head attends uniformly to zero values). The softmax scale is kept
as the original's (the fused kernel, which would rescale by the new head width, is turned off).

Handled: timm's ``Attention`` (timm.layers.attention: ViT, DeiT...), timm's Swin
``WindowAttention`` (bias table per head) and ``nn.MultiheadAttention``
self-attention with packed projections (torchvision's ViT), which becomes
:class:`PrunedMultiheadAttention` once cut; torchvision's Swin and MaxViT window attentions are in
``attention_tv``. Any other attention stays protected and reported.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from compress.artifacts.cuts import Cut
from compress.errors import PruneError
from compress.graph import attention_tv
from compress.graph.rules import MIX_REASON, Value, _lose
from compress.graph.slicing import keep_index, set_param


class _Timm(attention_tv.PackedQKV):
    """timm.layers.attention.Attention: qkv Linear (rows [3][heads][dim]), proj Linear."""

    def extent(self, m, shape, batch: int) -> tuple[int, int]:
        """(tokens per sample, tokens each token attends to) for an output of ``shape``."""
        window = math.prod(shape[1:-1]) if len(shape) > 2 else 1
        return math.prod(shape[:-1]) // max(batch, 1), window

    def unsupported(self, m, node, args, kwargs) -> str:
        if getattr(m, "gate", None) is not None:
            return "gated attention is not supported for head pruning"
        if not isinstance(m.norm, nn.Identity):
            return MIX_REASON.format(op="normalisation over all heads")
        if len(args) > 1 or any(kwargs.get(k) not in (None, False) for k in kwargs):
            return "attention called with a mask or causal flag"
        if m.num_heads * m.head_dim != m.attn_dim or m.qkv.out_features != 3 * m.attn_dim:
            return "attention widths do not match num_heads x head_dim"
        if not isinstance(m.q_norm, nn.Identity) or not isinstance(m.k_norm, nn.Identity):
            return "head_dim:" + MIX_REASON.format(op="q/k normalisation over the head width")
        return ""

    def probe(self, name):
        return f"{name}.norm"  # an Identity between the heads and proj

    def shape(self, m) -> tuple[int, int]:
        return m.num_heads, m.head_dim

    def rewrite(self, m, heads: list[int], dims: int, rows: int) -> None:
        heads = len(heads)
        m.qkv.out_features, m.proj.in_features = rows, heads * dims
        if dims != m.head_dim:  # the fused kernel would scale by the new width
            m.fused_attn = False
        m.num_heads, m.head_dim, m.attn_dim = heads, dims, heads * dims


class _TorchMHA:
    """nn.MultiheadAttention, self-attention with packed in_proj. Its own forward derives the head
    width from the input width, so a cut one becomes :class:`PrunedMultiheadAttention` (same
    parameters and state dict, explicit attention with the original softmax scale)."""

    def io(self, name, m):
        return (name, m, m.embed_dim), (name, m, m.embed_dim)

    def weights(self, m):
        return m.in_proj_weight, m.in_proj_bias, m.out_proj

    def packed(self, m):
        return m, "in_proj_weight", "in_proj_bias"

    extent = _Timm.extent

    def unsupported(self, m, node, args, kwargs) -> str:
        q = node.args[0] if node.args else None
        if len(node.args) < 3 or not (node.args[1] is q and node.args[2] is q):
            return "cross-attention (query, key and value differ) is not supported for head pruning"
        extra = {k: v for k, v in kwargs.items() if k not in ("need_weights", "average_attn_weights")}
        if len(args) > 3 or any(v not in (None, False) for v in extra.values()) or kwargs.get("need_weights", True):
            return "attention called with masks or returning its weights"
        if not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn or m.in_proj_weight is None:
            return "separate q/k/v projections, bias_k/bias_v or zero attention are not supported"
        return ""

    def probe(self, name):
        return None  # no module sees the heads: their weights score them

    def shape(self, m) -> tuple[int, int]:
        return m.num_heads, m.head_dim

    def rewrite(self, m, heads: list[int], dims: int, rows: int) -> None:
        heads = len(heads)
        if not isinstance(m, PrunedMultiheadAttention):
            m.__class__ = PrunedMultiheadAttention
            m.attn_scale = float(m.head_dim) ** -0.5
        m.out_proj.in_features = heads * dims
        m.num_heads, m.head_dim = heads, dims


class _TimmWindow(_Timm):
    """timm's Swin WindowAttention: like Attention, plus a relative-position bias table with one
    column per head (sliced with the heads) and a shift mask shared by all heads."""

    def unsupported(self, m, node, args, kwargs) -> str:
        h, d = self.shape(m)
        if m.qkv.out_features != 3 * h * d or m.proj.in_features != h * d:
            return "attention widths do not match num_heads x head_dim"
        if m.relative_position_bias_table.shape[1] != h:
            return "relative position bias table is not one column per head"
        return ""

    def probe(self, name):
        return None  # nothing between the heads and proj is a module: weights score them

    def shape(self, m) -> tuple[int, int]:
        return m.num_heads, m.qkv.out_features // (3 * m.num_heads)

    def rewrite(self, m, heads: list[int], dims: int, rows: int) -> None:

        if dims != self.shape(m)[1]:  # (before qkv.out_features changes) keep the original scale
            m.fused_attn = False
        m.qkv.out_features, m.proj.in_features = rows, len(heads) * dims
        set_param(m, "relative_position_bias_table", m.relative_position_bias_table[:, heads])
        m.num_heads = len(heads)


class PrunedMultiheadAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention after a head / head-width cut (self-attention, no masks): q, k, v are
    ``num_heads * head_dim`` wide while the input and output keep ``embed_dim``."""

    def forward(self, query, key=None, value=None, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if key_padding_mask is not None or attn_mask is not None or is_causal:
            raise ValueError("this attention was pruned for unmasked self-attention only")
        x = query if self.batch_first else query.transpose(0, 1)
        b, n, _ = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        attn = ((q * self.attn_scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        out = F.dropout(attn, self.dropout, self.training) @ v
        out = self.out_proj(out.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim))
        out = out if self.batch_first else out.transpose(0, 1)
        weights = (attn.mean(1) if average_attn_weights else attn) if need_weights else None
        return out, weights


def _handler(module: nn.Module):
    qualname = f"{type(module).__module__}.{type(module).__qualname__}"
    if qualname in ("timm.layers.attention.Attention", "timm.models.vision_transformer.Attention"):
        return _Timm()
    if qualname == "timm.models.swin_transformer.WindowAttention":
        return _TimmWindow()
    if type(module) in (nn.MultiheadAttention, PrunedMultiheadAttention):
        return _TorchMHA()
    return attention_tv.handler(module)


def handles(module: nn.Module) -> bool:
    return _handler(module) is not None


# ---------------------------------------------------------------- graph


def attention(an, node, rule, args, kwargs, module):
    handler = _handler(module)
    x = args[0]
    name = node.target
    out_shape = an.shapes(node)[0] if not an.shape(node) else an.shape(node)
    h, d = handler.shape(module)
    (in_name, in_mod, n_in), (out_name, out_mod, n_out) = handler.io(name, module)
    in_ids, out_ids = an.slot(in_name, "in", n_in, in_mod), an.slot(out_name, "out", n_out, out_mod)
    heads = an.slot(name, "heads", h, module, per_id=d)
    dims = an.slot(name, "head_dim", d, module, per_id=h)
    if x.tracked and x.axis == len(x.shape) - 1 and len(x.ids) == len(in_ids):
        an.sets.union_arrays(in_ids, x.ids)
    else:
        an.freeze(in_ids, node, f"input feature layout unknown ({x.why or 'channels not on the last axis'})")
        _lose(an, node, x, "feeds attention on an axis other than its channels")
    if in_name == name:  # the packed module's own width: the same attribute sizes input and output
        an.freeze(np.concatenate([in_ids, out_ids]), node, f"{type(module).__name__}'s embed_dim is not pruned")
    why = handler.unsupported(module, node, args, kwargs)
    if why.startswith("head_dim:"):
        an.freeze(dims, node, why.removeprefix("head_dim:"))
    elif why:
        an.freeze(np.concatenate([heads, dims]), node, why)
    tokens, window = handler.extent(module, out_shape, an.traced.example_shape[0])
    an.attention_call(name, tokens, window, (in_name, "in"), (out_name, "out"))
    both = np.stack([np.repeat(heads, d), np.tile(dims, h)])  # channel h*d+j: head h, dim j
    probe = handler.probe(name)
    if probe is not None:  # Taylor on the heads' output: each channel scores its head and its dim
        an.add_probe(probe, len(out_shape) - 1, both)
    else:
        an.add_static_scores(both, _weight_scores(module, handler))
    value = Value(tuple(out_shape), len(out_shape) - 1, out_ids)
    return (value, None) if not an.shape(node) else an.value(node, len(out_shape) - 1, out_ids)


def _weight_scores(module, handler) -> np.ndarray:
    """Per channel h*d+j: |value row| x |output column| (data-free, ranked among heads only)."""
    w, _, proj = handler.weights(module)
    width = proj.weight.shape[1]
    v_rows = w.detach()[2 * width:3 * width].float().norm(dim=1)
    cols = proj.weight.detach().float().norm(dim=0)
    return (v_rows * cols).double().cpu().numpy()


def macs(tokens: int, window: int, c_in: int, c_out: int, heads: int, dims: int) -> int:
    """Per sample: qkv and proj projections plus q.k and attn.v (each token attends to ``window``)."""
    width = heads * dims
    return tokens * (3 * c_in * width + width * c_out) + 2 * tokens * window * width


# ---------------------------------------------------------------- surgery and proof


def _rows(h: int, d: int, heads: list[int], dims: list[int]) -> torch.Tensor:
    """q/k/v rows (layout [3][heads][head_dim]) of the given heads x dims."""
    return torch.as_tensor([s * h * d + i * d + j for s in range(3) for i in heads for j in dims], dtype=torch.long)


def cut(name: str, module: nn.Module, roles: dict[str, Cut]) -> None:
    """Keep the heads and head dims the cut records name; rewrite the module's attributes."""

    handler = _handler(module)
    h, d = handler.shape(module)
    keep_h = keep_index(roles.get("heads"), h, name)
    keep_d = keep_index(roles.get("head_dim"), d, name)
    if set(roles) - {"heads", "head_dim"}:
        raise PruneError(f"cut of attention {name!r} names roles it does not have: {sorted(roles)}",
                         "this is a bug: please report it")
    heads = keep_h.tolist() if keep_h is not None else list(range(h))
    dims = keep_d.tolist() if keep_d is not None else list(range(d))
    rows = _rows(h, d, heads, dims)
    cols = torch.as_tensor([i * d + j for i in heads for j in dims], dtype=torch.long)
    w, b, proj = handler.weights(module)
    owner, wname, bname = handler.packed(module)
    set_param(owner, wname, w[rows])
    if b is not None:
        set_param(owner, bname, b[rows])
    set_param(proj, "weight", proj.weight[:, cols])
    handler.rewrite(module, heads, len(dims), len(rows))


def zero(module: nn.Module, role: str, removed: list[int]) -> None:
    """The proof's reference: the removed heads (or dims of every head) produce zeros."""
    h, d = _handler(module).shape(module)
    heads, dims = (removed, list(range(d))) if role == "heads" else (list(range(h)), removed)
    rows = _rows(h, d, heads, dims)
    w, b, _ = _handler(module).weights(module)
    w[rows] = 0
    if b is not None:
        b[rows] = 0
