"""Two helpers every layer handler's surgery uses: the kept indices a cut record names (checked
against the layer's width) and replacing a parameter or buffer by its slice."""

from __future__ import annotations

import torch
import torch.nn as nn

from compress.artifacts.cuts import Cut
from compress.errors import PruneError


def keep_index(cut: Cut | None, expected: int, name: str) -> torch.Tensor | None:
    """The kept indices of ``cut`` as a long tensor (None: no cut), refusing a record made for another width."""
    if cut is None:
        return None
    if cut.size != expected:
        raise PruneError(f"layer {name!r} has {expected} channels where the cut record expects {cut.size}",
                         "the record was made for another architecture or arch kwargs")
    return torch.as_tensor(cut.keep, dtype=torch.long)


def set_param(module: nn.Module, attr: str, value: torch.Tensor) -> None:
    """Replace ``module.attr`` by ``value``, keeping it a Parameter (and its requires_grad) if it was one."""
    old = getattr(module, attr)
    if isinstance(old, nn.Parameter):
        setattr(module, attr, nn.Parameter(value.contiguous(), requires_grad=old.requires_grad))
    else:
        setattr(module, attr, value.contiguous())
