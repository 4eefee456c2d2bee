"""Trace a model into a torch.fx graph with shapes, fail-closed.

Standard ``torch.nn`` layers, known attention and registered layer types are leaves. When a custom module cannot be traced (data-dependent
control flow and the like), it is retried as an opaque leaf: the graph treats it as an unknown
op, so every channel flowing through it is protected instead of the whole model failing.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn as nn
from torch.fx.passes.shape_prop import ShapeProp

from compress.errors import GraphError
from compress.graph.handlers import is_leaf

MAX_OPAQUE_RETRIES = 20


class _Tracer(fx.Tracer):
    def __init__(self, opaque: set[str]):
        super().__init__()
        self.opaque = opaque
        self.failed_at: str | None = None

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname in self.opaque or is_leaf(m) or super().is_leaf_module(m, qualname)

    def create_node(self, *args, **kwargs):
        node = super().create_node(*args, **kwargs)
        node.meta["scope"] = self.scope.module_path  # the module a function call sits in
        return node

    def create_proxy(self, kind, target, args, kwargs, *rest, **kw):
        from compress.graph.iterable import sized_proxy  # list(x.chunk(2, 1)): a length fixed by the code

        return sized_proxy(self, super().create_proxy(kind, target, args, kwargs, *rest, **kw), kind, target, args,
                           kwargs)

    def call_module(self, m, forward, args, kwargs):
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_at is None:  # innermost module the failure passed through
                self.failed_at = self.path_of_module(m)
            raise


@dataclass
class TracedModel:
    gm: fx.GraphModule
    example_shape: tuple[int, ...]
    opaque: dict[str, str] = field(default_factory=dict)  # module name -> trace error
    root: nn.Module | None = None  # the traced model itself (gm only holds bare copies of the
    # modules whose parameters the graph reads with get_attr)

    def module(self, name: str) -> nn.Module:
        """The model's own submodule ``name`` (its class and attributes, not fx's bare copy)."""
        return (self.root if self.root is not None else self.gm).get_submodule(name)


def trace(model: nn.Module, example: torch.Tensor) -> TracedModel:
    """Symbolically trace ``model`` (in eval mode) and record every node's output shape."""
    was_training = model.training
    model.eval()
    try:
        gm, opaque = _trace_with_fallback(model)
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints a traceback before raising
            ShapeProp(gm).propagate(example)
    except GraphError:
        raise
    except Exception as err:  # shape propagation of a traced graph failing is a model problem
        raise GraphError(
            f"running the traced model on an input of shape {tuple(example.shape)} failed: {_node_error(err)}",
            "check --input-size / --preset for this model",
        ) from err
    finally:
        model.train(was_training)
    return TracedModel(gm=gm, example_shape=tuple(example.shape), opaque=opaque, root=model)


def _node_error(err: BaseException) -> str:
    """ShapeProp wraps a node's failure in a RuntimeError naming the node: the node's own error, and where."""
    cause = err.__cause__ if isinstance(err, RuntimeError) and err.__cause__ is not None else None
    if cause is None:
        return _first_line(err)
    node = re.search(r"node=(%\S+)", str(err))
    return _first_line(cause) + (f" (at the traced graph's {node.group(1)})" if node else "")


def _trace_with_fallback(model: nn.Module) -> tuple[fx.GraphModule, dict[str, str]]:
    opaque: dict[str, str] = {}
    for _ in range(MAX_OPAQUE_RETRIES):
        tracer = _Tracer(set(opaque))
        try:
            graph = tracer.trace(model, concrete_args=_call_defaults(model))
        except Exception as err:
            name = tracer.failed_at
            if not name or name in opaque:
                raise GraphError(
                    f"torch.fx cannot trace {type(model).__name__}: {_first_line(err)}",
                    "the model's forward must be traceable (no data-dependent Python control flow at the top level)",
                ) from err
            opaque[name] = _first_line(err)
            continue
        return fx.GraphModule(tracer.root, graph, type(model).__name__), opaque
    raise GraphError(f"torch.fx cannot trace {type(model).__name__}: more than {MAX_OPAQUE_RETRIES} untraceable modules")


def _call_defaults(model: nn.Module) -> dict | None:
    """The forward's arguments after the input whose defaults are plain constants (``mask=None``,
    ``return_all=False``): the model is only ever called as ``model(x)``, so they are traced as those constants
    (as fx ``concrete_args``) instead of as proxies that ``if mask is not None`` would take for given."""
    import inspect

    try:
        params = list(inspect.signature(model.forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    constants = {p.name: p.default for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                 and p.default is not p.empty and (p.default is None or isinstance(p.default, (bool, int, float, str)))}
    return constants or None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"
