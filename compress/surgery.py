"""Physically remove channels: slice parameters and buffers, update width attributes.

Input is a list of *cuts* — plain data, JSON-serialisable, replayable on a freshly built model:
``{"name": "layer1.0.conv1", "role": "out", "dim": 0, "size": 16, "keep": [0, 2, ...]}``.
Roles: ``in``/``out`` of convs and linears, ``chan`` of per-channel layers (BN, GroupNorm,
LayerNorm, PReLU), ``param`` for a bare parameter or buffer sliced along ``dim``.
Modules are edited in place and keep their classes, so the model still runs its own code.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import torch
import torch.nn as nn

from compress.errors import PruneError
from compress.graph import attention

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d,
         nn.InstanceNorm2d, nn.InstanceNorm3d)


def apply_cuts(model: nn.Module, cuts: Iterable[dict]) -> nn.Module:
    by_module: dict[str, dict[str, dict]] = defaultdict(dict)
    params = []
    for cut in cuts:
        if cut["role"] == "param":
            params.append(cut)
        else:
            by_module[cut["name"]][cut["role"]] = cut
    with torch.no_grad():
        for name, roles in by_module.items():
            module = _get(model, name)
            _cut_module(name, module, roles)
        for cut in params:
            _cut_param(model, cut)
    return model


def _get(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError as err:
        raise PruneError(f"layer {name!r} named in the cut record does not exist in this model",
                         "the record was made for another architecture") from err


def _index(cut: dict | None, expected: int, name: str) -> torch.Tensor | None:
    if cut is None:
        return None
    if cut["size"] != expected:
        raise PruneError(f"layer {name!r} has {expected} channels where the cut record expects {cut['size']}",
                         "the record was made for another architecture or arch kwargs")
    return torch.as_tensor(cut["keep"], dtype=torch.long)


def _set_param(module: nn.Module, attr: str, value: torch.Tensor) -> None:
    old = getattr(module, attr)
    if isinstance(old, nn.Parameter):
        setattr(module, attr, nn.Parameter(value.contiguous(), requires_grad=old.requires_grad))
    else:
        setattr(module, attr, value.contiguous())


def _cut_module(name: str, m: nn.Module, roles: dict[str, dict]) -> None:
    if isinstance(m, _CONV):
        _cut_conv(name, m, roles)
    elif isinstance(m, nn.Linear):
        keep_in = _index(roles.get("in"), m.in_features, name)
        keep_out = _index(roles.get("out"), m.out_features, name)
        if keep_out is not None:
            _set_param(m, "weight", m.weight[keep_out])
            if m.bias is not None:
                _set_param(m, "bias", m.bias[keep_out])
            m.out_features = len(keep_out)
        if keep_in is not None:
            _set_param(m, "weight", m.weight[:, keep_in])
            m.in_features = len(keep_in)
    elif isinstance(m, _NORM):
        keep = _index(roles.get("chan"), m.num_features, name)
        _slice_attrs(m, ("weight", "bias", "running_mean", "running_var"), keep)
        m.num_features = len(keep)
    elif isinstance(m, nn.GroupNorm):
        keep = _index(roles.get("chan"), m.num_channels, name)
        per = m.num_channels // m.num_groups
        _slice_attrs(m, ("weight", "bias"), keep)
        m.num_channels, m.num_groups = len(keep), len(keep) // per
    elif isinstance(m, nn.LayerNorm):
        keep = _index(roles.get("chan"), m.normalized_shape[-1], name)
        _slice_attrs(m, ("weight", "bias"), keep)
        m.normalized_shape = (len(keep),)
    elif isinstance(m, nn.PReLU):
        keep = _index(roles.get("chan"), m.num_parameters, name)
        _slice_attrs(m, ("weight",), keep)
        m.num_parameters = len(keep)
    elif attention.handles(m):
        attention.cut(name, m, roles)
    else:
        raise PruneError(f"no slicer for layer {name!r} ({type(m).__name__})", "this is a bug: please report it")


def _slice_attrs(m: nn.Module, attrs: tuple[str, ...], keep: torch.Tensor) -> None:
    for attr in attrs:
        value = getattr(m, attr, None)
        if isinstance(value, torch.Tensor):
            _set_param(m, attr, value[keep])


def _cut_conv(name: str, m: nn.Module, roles: dict[str, dict]) -> None:
    """Weight is (out, in/g, k...) for convs and (in, out/g, k...) for transposed convs.
    With groups > 1 the graph only ever removes whole groups (inputs and outputs together)."""
    keep_in = _index(roles.get("in"), m.in_channels, name)
    keep_out = _index(roles.get("out"), m.out_channels, name)
    g = m.groups
    new_in = len(keep_in) if keep_in is not None else m.in_channels
    new_out = len(keep_out) if keep_out is not None else m.out_channels
    new_g = g
    if g > 1:
        ipg, opg = m.in_channels // g, m.out_channels // g
        if new_in % ipg or new_out % opg or new_in // ipg != new_out // opg:
            raise PruneError(f"cut of grouped conv {name!r} does not remove whole groups", "this is a bug: please report it")
        new_g = new_in // ipg
    out_dim, in_dim = (1, 0) if m.transposed else (0, 1)
    w = m.weight
    if keep_out is not None:
        w = _take(w, out_dim, keep_out, g, m.out_channels) if m.transposed else w[keep_out]
        if m.bias is not None:
            _set_param(m, "bias", m.bias[keep_out])
    if keep_in is not None:
        if m.transposed:
            w = w[keep_in]
        elif g == 1:
            w = w[:, keep_in]
    _set_param(m, "weight", w)
    m.in_channels, m.out_channels, m.groups = new_in, new_out, new_g


def _take(w: torch.Tensor, dim: int, keep: torch.Tensor, groups: int, total: int) -> torch.Tensor:
    """Select global output channels of a transposed conv whose weight holds out/g per group."""
    if groups == 1:
        return w.index_select(dim, keep)
    per = total // groups
    local = sorted({int(k) % per for k in keep})
    return w.index_select(dim, torch.as_tensor(local, dtype=torch.long))


def _cut_param(model: nn.Module, cut: dict) -> None:
    owner_name, _, attr = cut["name"].rpartition(".")
    owner = _get(model, owner_name) if owner_name else model
    value = getattr(owner, attr)
    keep = _index(cut, value.shape[cut["dim"]], cut["name"])
    with torch.no_grad():
        _set_param(owner, attr, value.index_select(cut["dim"], keep))
