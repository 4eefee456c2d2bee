"""THE registry of channel rules for ops: rule name (as ``compress.graph.ops`` names it) -> function.

A rule receives the analyser (``an``), the fx node, its table entry and its resolved arguments
(``Value`` for tensors, ``Dynamic`` for run-time non-tensor values, plain Python otherwise) and
returns the output's ``Value``. Rules couple ids (union), create layer slots, or protect ids
(freeze) whenever the op's effect on channels is not exactly known. Op rules live by family in
``layout.py``, ``combine.py``, ``indexing.py`` and ``functional.py``; layers with parameters have a handler each
in ``compress/layers/`` instead. A new op rule is a function in one of those files plus a line here.

``Value``, ``Dynamic``, ``MIX_REASON`` and the helpers ``_lose``/``_arg`` are re-exported for the
handlers in this package that import them from here (``attention.py``).
"""

from __future__ import annotations

from typing import Any, Callable

from compress.graph import combine, functional, indexing, layout
from compress.layers.values import MIX_REASON, Dynamic, Value
from compress.layers.values import arg as _arg
from compress.layers.values import lose as _lose

__all__ = ["MIX_REASON", "RULES", "Dynamic", "Value", "_arg", "_lose"]

RULES: dict[str, Callable[..., Any]] = {
    # layout-preserving
    "elementwise": layout.elementwise,
    "spatial": layout.spatial,
    "pool_indices": layout.pool_indices,
    "unpool": layout.unpool,
    "softmax": layout.softmax,
    "meta": layout.meta,
    # axis bookkeeping
    "permute": layout.permute,
    "transpose": layout.transpose,
    "unsqueeze": layout.unsqueeze,
    "squeeze": layout.squeeze,
    "reduce": layout.reduce,
    "flatten": layout.flatten,
    "reshape": layout.reshape,
    "pad": layout.pad,
    # combining
    "broadcast": combine.broadcast,
    "cat": combine.cat,
    "stack": combine.stack,
    "chunk": combine.chunk,
    "split": combine.split,
    "getitem": indexing.getitem,
    "index_select": indexing.index_select,
    # functional layers and size arithmetic
    "fn_batchnorm": functional.fn_batchnorm,
    "fn_groupnorm": functional.fn_groupnorm,
    "fn_layernorm": functional.fn_layernorm,
    "fn_linear": functional.fn_linear,
    "fn_conv": functional.fn_conv,
    "arith": functional.arith,
    "expand": functional.expand,
}
