"""Convolutions (1d/2d/3d and transposed): ``in`` and ``out`` slots; grouped ones lose whole groups.

Weight is (out, in/g, k...) for convs and (in, out/g, k...) for transposed convs. With groups > 1
a group's inputs and outputs stand or fall together, so the graph only removes whole groups.
Where that leaves a grouped conv nothing to lose (its groups are paths that must all stay: a
ResNeSt radix conv), the graph is built again with the conv in ``an.group_width``: the groups
all stay and lose the same local channels (channel i of every group goes together), inputs and
outputs apart. The cut tells the two apart by the kept indices.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from compress.artifacts.cuts import Cut
from compress.errors import PruneError
from compress.export.layer_models import LayerSpec
from compress.layers.base import LayerHandler
from compress.layers.slicing import keep_index, set_param
from compress.layers.values import lose

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
TYPES = CONVS + TRANSPOSED


def rule(an, node, args, kwargs, module):
    x = args[0]
    name = node.target
    in_ids = an.slot(name, "in", module.in_channels, module)
    out_ids = an.slot(name, "out", module.out_channels, module)
    if x.tracked and x.axis == 1 and len(x.ids) == module.in_channels:
        an.sets.union_arrays(in_ids, x.ids)
    else:
        an.freeze(in_ids, node, f"input channel layout unknown ({x.why or 'not on axis 1'})")
        lose(an, node, x, "feeds a convolution along an unexpected axis")
    g = module.groups
    ipg, opg = module.in_channels // g, module.out_channels // g
    keeps_groups = g > 1 and name in an.group_width
    if keeps_groups:  # every group stays and loses the same local channels
        an.sets.union_strided(in_ids, ipg)
        an.sets.union_strided(out_ids, opg)
    elif g > 1:  # a group's inputs and outputs stand or fall together: whole groups are removed
        for k in range(g):
            an.sets.union_all(np.concatenate([in_ids[k * ipg:(k + 1) * ipg], out_ids[k * opg:(k + 1) * opg]]))
    result = an.value(node, 1, out_ids)
    out = an.shape(node)
    spatial = (int(np.prod(out[2:])) if len(out) > 2 else 1) * an.rows_per_sample(node)
    if getattr(module, "transposed", False):  # one kernel application per input position
        in_shape = an.shape(node.args[0])
        spatial = int(np.prod(in_shape[2:])) if len(in_shape) > 2 else 1
    an.record_call(node, name, "conv", spatial * int(np.prod(module.kernel_size)), module.groups, keeps_groups)
    return result


def group_width_candidate(module: nn.Module) -> bool:
    """A grouped (not depthwise, not transposed) conv that could keep its groups and narrow them."""
    g = getattr(module, "groups", 1)
    return isinstance(module, CONVS) and g > 1 and module.in_channels // g > 1 and module.out_channels // g > 1


def _local(keep: torch.Tensor | None, per: int, g: int) -> list[int] | None:
    """The local indices kept in every group when they are the same in each (None otherwise)."""
    if keep is None:
        return list(range(per))
    local = sorted({int(k) % per for k in keep if int(k) < per})
    tiled = [k * per + i for k in range(g) for i in local]
    return local if keep.tolist() == tiled else None


def _whole(keep: torch.Tensor | None, per: int, g: int) -> list[int] | None:
    """The groups kept when ``keep`` is made of whole groups (None otherwise)."""
    if keep is None:
        return list(range(g))
    kept = sorted({int(k) // per for k in keep})
    return kept if keep.tolist() == [k * per + i for k in kept for i in range(per)] else None


def cut(name: str, m: nn.Module, roles: dict[str, Cut]) -> None:
    keep_in = keep_index(roles.get("in"), m.in_channels, name)
    keep_out = keep_index(roles.get("out"), m.out_channels, name)
    g = m.groups
    new_in = len(keep_in) if keep_in is not None else m.in_channels
    new_out = len(keep_out) if keep_out is not None else m.out_channels
    new_g = g
    local_in = None
    if g > 1:
        ipg, opg = m.in_channels // g, m.out_channels // g
        whole_in, whole_out = _whole(keep_in, ipg, g), _whole(keep_out, opg, g)
        if whole_in is not None and whole_in == whole_out:
            new_g = len(whole_in)
        elif not m.transposed and _local(keep_out, opg, g) is not None \
                and (local := _local(keep_in, ipg, g)) is not None:
            local_in = local if keep_in is not None else None  # the groups stay, narrower
        else:
            raise PruneError(f"cut of grouped conv {name!r} removes neither whole groups nor the same channels of "
                             "every group", "this is a bug: please report it")
    w = m.weight
    if keep_out is not None:
        w = _take(w, 1, keep_out, g, m.out_channels) if m.transposed else w[keep_out]
        if m.bias is not None:
            set_param(m, "bias", m.bias[keep_out])
    if keep_in is not None:
        if m.transposed:
            w = w[keep_in]
        elif g == 1:
            w = w[:, keep_in]
        elif local_in is not None:
            w = w[:, local_in]
    set_param(m, "weight", w)
    m.in_channels, m.out_channels, m.groups = new_in, new_out, new_g


def _take(w: torch.Tensor, dim: int, keep: torch.Tensor, groups: int, total: int) -> torch.Tensor:
    """Select global output channels of a transposed conv whose weight holds out/g per group."""
    if groups == 1:
        return w.index_select(dim, keep)
    per = total // groups
    local = sorted({int(k) % per for k in keep})
    return w.index_select(dim, torch.as_tensor(local, dtype=torch.long))


def zero(m: nn.Module, cut: Cut, removed: list[int]) -> None:
    """Removed inputs read by no kept output: their weights are zeroed. Grouped convs losing whole
    groups only ever feed removed outputs with their removed inputs: nothing to zero; a grouped
    conv keeping its groups reads the removed local channels of each group: those are zeroed."""
    if cut.role != "in" or m.transposed and m.groups != 1:
        return None
    idx = torch.as_tensor(removed, dtype=torch.long)
    if m.groups > 1:
        ipg = m.in_channels // m.groups
        keep = torch.as_tensor(cut.keep, dtype=torch.long)
        if _whole(keep, ipg, m.groups) is not None:
            return None
        m.weight[:, sorted({int(r) % ipg for r in removed})] = 0
        return None
    if m.transposed:
        m.weight[idx] = 0
    else:
        m.weight[:, idx] = 0
    return None


def macs(m: nn.Module, inputs: torch.Tensor, output: torch.Tensor) -> int:
    """Per sample: each output (conv) or input (transposed) position reads a kernel of one group."""
    if m.transposed:
        per_in = (m.out_channels // m.groups) * math.prod(m.kernel_size)
        batch = inputs.shape[0] if inputs.dim() > 1 else 1
        return inputs.numel() * per_in // batch
    batch = output.shape[0] if output.dim() > 1 else 1
    return output.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size) // batch


def row(m: nn.Module):
    return m.in_channels, m.out_channels, tuple(m.kernel_size), m.groups


def layer_spec(m: nn.Module, in_shape: tuple[int, ...]) -> LayerSpec:
    """The latency table's operator for this conv called on ``in_shape`` (batch first, as traced)."""
    shape = tuple(int(v) for v in in_shape[1:])
    padding = m.padding if isinstance(m.padding, str) else tuple(m.padding)
    transposed = bool(m.transposed)
    return LayerSpec("conv_transpose" if transposed else "conv", shape, m.in_channels, m.out_channels,
                     tuple(m.kernel_size), tuple(m.stride), padding, tuple(m.dilation), m.groups,
                     tuple(m.output_padding) if transposed else ())


HANDLER = LayerHandler(rule=rule, cut=cut, zero=zero, probe="layer", macs=macs, row=row,
                       width=lambda m: m.out_channels, layer_spec=layer_spec)
