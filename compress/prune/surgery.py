"""Physically remove channels: each layer's handler slices its parameters and width attributes.

Input is a list of cut records (:class:`compress.artifacts.cuts.Cut`: a layer, its role, the kept
indices), replayable on a freshly built model. Modules are edited in place and keep their classes, so the
model still runs its own code. How a layer type is sliced lives in its handler
(``compress/layers/``, ``compress.graph.attention``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import torch
import torch.nn as nn

from compress.artifacts.cuts import Cut
from compress.errors import PruneError
from compress.graph.handlers import handler_for
from compress.layers.slicing import keep_index, set_param


def apply_cuts(model: nn.Module, cuts: Iterable[Cut]) -> nn.Module:
    by_module: dict[str, dict[str, Cut]] = defaultdict(dict)
    params = []
    for cut in cuts:
        if not isinstance(cut, Cut):
            raise TypeError(f"a cut record is a compress.artifacts.cuts.Cut, not {type(cut).__name__}")
        if cut.role == "param":
            params.append(cut)
        else:
            by_module[cut.name][cut.role] = cut
    with torch.no_grad():
        for name, roles in by_module.items():
            module = _get(model, name)
            handler = handler_for(module)
            if handler is None:
                raise PruneError(f"no slicer for layer {name!r} ({type(module).__name__})",
                                 "register its type with compress.register_layer before loading or pruning")
            handler.cut(name, module, roles)
        for cut in params:
            _cut_param(model, cut)
    return model


def _get(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError as err:
        raise PruneError(f"layer {name!r} named in the cut record does not exist in this model",
                         "the record was made for another architecture") from err


def _cut_param(model: nn.Module, cut: Cut) -> None:
    owner_name, _, attr = cut.name.rpartition(".")
    owner = _get(model, owner_name) if owner_name else model
    value = getattr(owner, attr)
    keep = keep_index(cut, value.shape[cut.dim], cut.name)
    with torch.no_grad():
        set_param(owner, attr, value.index_select(cut.dim, keep))
