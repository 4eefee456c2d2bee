"""Multi-head attention as one layer: whole heads and head width are prunable structures.

A known attention module is traced as a leaf and handled here in one place: its channel rule
(input -> ``qkv:in``, output <- ``proj:out``, and two structures of its own: ``heads`` and
``head_dim``, the same dims removed in every head), its MAC facts, the surgery (qkv rows,
proj columns, ``num_heads``/``head_dim``/``attn_dim`` rewritten so the model runs its own code
and reloads), and the proof's zeroing (the removed q/k/v rows produce zeros: a zero q/k dim
adds nothing to q.k, a zero head attends uniformly to zero values). The softmax scale is kept
as the original's (the fused kernel, which would rescale by the new head width, is turned off).

Handled: timm's ``Attention`` (timm.layers.attention, used by ViT, DeiT...) (fused ``qkv``). ``nn.MultiheadAttention``
derives its head width from the input width, so it cannot lose heads without replacing its
forward: it stays protected and reported, like any attention this file does not know.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from compress.graph.rules import MIX_REASON, Value, _lose

HANDLED = {"timm.layers.attention.Attention", "timm.models.vision_transformer.Attention"}


def _qualname(module: nn.Module) -> str:
    return f"{type(module).__module__}.{type(module).__qualname__}"


def handles(module: nn.Module) -> bool:
    return _qualname(module) in HANDLED


# ---------------------------------------------------------------- graph


def attention(an, node, rule, args, kwargs, module):
    x = args[0]
    name = node.target
    out_shape = an.shape(node)
    h, d = module.num_heads, module.head_dim
    in_ids = an.slot(f"{name}.qkv", "in", module.qkv.in_features, module.qkv)
    out_ids = an.slot(f"{name}.proj", "out", module.proj.out_features, module.proj)
    heads = an.slot(name, "heads", h, module, per_id=d)
    dims = an.slot(name, "head_dim", d, module, per_id=h)
    if x.tracked and x.axis == len(x.shape) - 1 and len(x.ids) == len(in_ids):
        an.sets.union_arrays(in_ids, x.ids)
    else:
        an.freeze(in_ids, node, f"input feature layout unknown ({x.why or 'channels not on the last axis'})")
        _lose(an, node, x, "feeds attention on an axis other than its channels")
    why = _unsupported(module, args, kwargs)
    if why:
        an.freeze(np.concatenate([heads, dims]), node, why)
    if not isinstance(module.q_norm, nn.Identity) or not isinstance(module.k_norm, nn.Identity):
        an.freeze(dims, node, MIX_REASON.format(op="q/k normalisation over the head width"))
    tokens = int(np.prod(out_shape[1:-1])) if len(out_shape) > 2 else 1
    an.attention_call(name, tokens)
    # Taylor probe on the attention output before proj (timm's `norm`, an Identity): each of its
    # H*D channels scores its head and its dim
    an.add_probe(f"{name}.norm", len(out_shape) - 1, np.stack([np.repeat(heads, d), np.tile(dims, h)]))
    return an.value(node, len(out_shape) - 1, out_ids)


def _unsupported(module, args, kwargs) -> str:
    if getattr(module, "gate", None) is not None:
        return "gated attention is not supported for head pruning"
    if not isinstance(module.norm, nn.Identity):
        return MIX_REASON.format(op="normalisation over all heads")
    if len(args) > 1 or any(kwargs.get(k) not in (None, False) for k in kwargs):
        return "attention called with a mask or causal flag"
    if module.num_heads * module.head_dim != module.attn_dim or module.qkv.out_features != 3 * module.attn_dim:
        return "attention widths do not match num_heads x head_dim"
    return ""


def macs(tokens: int, c_in: int, c_out: int, heads: int, dims: int) -> int:
    """Per sample: qkv and proj projections plus q.k and attn.v."""
    width = heads * dims
    return tokens * (3 * c_in * width + width * c_out) + 2 * tokens * tokens * width


# ---------------------------------------------------------------- surgery and proof


def _rows(module, heads: list[int], dims: list[int]) -> torch.Tensor:
    """qkv rows (layout [3][heads][head_dim]) of the given heads x dims."""
    h, d = module.num_heads, module.head_dim
    idx = [s * h * d + i * d + j for s in range(3) for i in heads for j in dims]
    return torch.as_tensor(idx, dtype=torch.long)


def _cols(module, heads: list[int], dims: list[int]) -> torch.Tensor:
    d = module.head_dim
    return torch.as_tensor([i * d + j for i in heads for j in dims], dtype=torch.long)


def cut(name: str, module: nn.Module, roles: dict[str, dict]) -> None:
    """Keep the heads and head dims the cut records name; rewrite the module's attributes."""
    from compress.surgery import _index, _set_param

    h, d = module.num_heads, module.head_dim
    keep_h = _index(roles.get("heads"), h, name)
    keep_d = _index(roles.get("head_dim"), d, name)
    heads = keep_h.tolist() if keep_h is not None else list(range(h))
    dims = keep_d.tolist() if keep_d is not None else list(range(d))
    rows, cols = _rows(module, heads, dims), _cols(module, heads, dims)
    qkv, proj = module.qkv, module.proj
    _set_param(qkv, "weight", qkv.weight[rows])
    if qkv.bias is not None:
        _set_param(qkv, "bias", qkv.bias[rows])
    _set_param(proj, "weight", proj.weight[:, cols])
    qkv.out_features, proj.in_features = len(rows), len(cols)
    if len(dims) != d:  # keep the original softmax scale: the fused kernel would use the new width's
        module.fused_attn = False
    module.num_heads, module.head_dim, module.attn_dim = len(heads), len(dims), len(cols)


def zero(module: nn.Module, role: str, removed: list[int]) -> None:
    """The proof's reference: the removed heads (or dims of every head) produce zeros."""
    h, d = module.num_heads, module.head_dim
    heads, dims = (removed, list(range(d))) if role == "heads" else (list(range(h)), removed)
    rows = _rows(module, heads, dims)
    module.qkv.weight[rows] = 0
    if module.qkv.bias is not None:
        module.qkv.bias[rows] = 0
