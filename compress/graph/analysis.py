"""Walk a traced graph once, applying the op table, to find which channels are coupled.

The result, :class:`ChannelGraph`, lists every *slot* (a layer dimension whose indices are
channel ids: a conv's outputs, a linear's inputs, a BN's channels, a parameter's dim) and the
disjoint sets of ids that must be removed together. Unknown ops and the model's inputs and
outputs freeze what they touch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn

from compress.graph import ops, rules
from compress.layers.base import LayerHandler
from compress.layers.conv import group_width_candidate
from compress.layers.values import Dynamic, Value
from compress.graph.trace import TracedModel
from compress.graph.unionfind import ChannelSets, Protection

NORM_FUNCTIONS = {"fn_batchnorm", "fn_groupnorm", "fn_layernorm"}  # functional norms (ops rules)


@dataclass
class Slot:
    """One layer dimension indexed by channel ids."""

    name: str  # module (or parameter) qualified name
    role: str  # "in" | "out" | "chan" | "param"
    ids: np.ndarray
    kind: str  # module class name, or "Parameter"
    dim: int = 0  # for role "param": the parameter's dimension
    consumes: bool = False  # a param dim a functional conv/linear reads as its input channels
    per_id: int = 1  # channels one id stands for (a head: its head width)


@dataclass
class Probe:
    """An activation whose channels get importance: a norm's output, or a conv/linear output
    not followed by a norm."""

    module: str
    axis: int
    ids: np.ndarray  # one id per index along axis, or (k, n): index j scores the k ids ids[:, j]


@dataclass
class LayerCall:
    """What a conv/linear call costs, for the MAC model."""

    module: str
    kind: str  # "conv" | "linear"
    macs_per_io: int  # multiply-accumulates per (input channel per group x output channel)
    in_shape: tuple[int, ...] = ()  # the input's shape in the trace (batch first), for latency tables
    groups: int = 1
    keeps_groups: bool = False  # a grouped conv whose groups all stay, narrower (``an.group_width``)


@dataclass
class AttentionCall:
    """An attention layer's cost: its projections and matmuls, sized by four slots."""

    module: str
    tokens: int  # per sample
    window: int  # tokens each token attends to
    in_slot: tuple[str, str]  # the slot sizing its input width
    out_slot: tuple[str, str]


@dataclass
class ChannelGraph:
    traced: TracedModel
    sets: ChannelSets
    slots: dict[tuple[str, str], Slot]
    probes: list[Probe]
    calls: list[LayerCall]
    input_ids: np.ndarray
    unknown_ops: list[Protection] = field(default_factory=list)
    attention: list[AttentionCall] = field(default_factory=list)
    static_scores: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (ids (k, n), n values)

    def roots(self, ids: np.ndarray) -> np.ndarray:
        return self.sets.roots(ids)


class Analyzer:
    def __init__(self, traced: TracedModel, layernorm_widths: bool = False, group_width: frozenset[str] = frozenset()):
        self.traced = traced
        self.group_width = group_width  # grouped convs whose groups all stay and narrow (compress.layers.conv)
        self.layernorm_widths = layernorm_widths  # opt-in: nn.LayerNorm over channels is per-channel
        self.gm = traced.gm
        self.sets = ChannelSets()
        self.slots: dict[tuple[str, str], Slot] = {}
        self.env: dict[fx.Node, Any] = {}
        self.probes: list[Probe] = []
        self.calls: list[LayerCall] = []
        self.input_ids = np.zeros(0, dtype=np.int64)
        self.unknown: list[Protection] = []
        self.owner_probes: list[tuple[str, fx.Node]] = []  # (module, functional norm/conv node inside it)
        self.attention: list[AttentionCall] = []
        self.static_scores: list[tuple[np.ndarray, np.ndarray]] = []

    # ------------------------------------------------------------ API used by rules

    def shape(self, node: fx.Node) -> tuple[int, ...]:
        meta = node.meta.get("tensor_meta")
        return tuple(meta.shape) if hasattr(meta, "shape") else ()

    def shapes(self, node: fx.Node) -> list[tuple[int, ...]]:
        meta = node.meta.get("tensor_meta")
        if meta is None or _is_tensor_meta(meta):
            return []
        return [tuple(m.shape) if _is_tensor_meta(m) else () for m in meta]

    def value(self, node: fx.Node, axis: int, ids: np.ndarray) -> Value:
        shape = self.shape(node)
        if axis >= len(shape) or shape[axis] != len(ids):  # a rule's view disagrees with reality
            self.freeze(ids, node, f"channel bookkeeping does not match the traced shape {shape}")
            return Value(shape, why="layout mismatch")
        return Value(shape, axis, ids)

    def untracked(self, node: fx.Node, why: str) -> Value:
        return Value(self.shape(node), why=why)

    def untracked_shape(self, shape, why: str) -> Value:
        return Value(tuple(shape), why=why)

    def slot(self, name: str, role: str, n: int, module: nn.Module, per_id: int = 1) -> np.ndarray:
        key = (name, role)
        if key not in self.slots:
            self.slots[key] = Slot(name, role, self.sets.new(n), type(module).__name__, per_id=per_id)
        return self.slots[key].ids

    def attention_call(self, module: str, tokens: int, window: int, in_slot: tuple[str, str],
                       out_slot: tuple[str, str]) -> None:
        self.attention.append(AttentionCall(module, tokens, window, in_slot, out_slot))

    def add_static_scores(self, ids: np.ndarray, values: np.ndarray) -> None:
        """Data-free scores for ids no activation can measure (heads inside a fused module)."""
        self.static_scores.append((ids, values))

    def add_probe(self, module: str, axis: int, ids: np.ndarray) -> None:
        self.probes.append(Probe(module, axis, ids))

    def param_slot(self, name: str, dim: int, n: int, consumes: bool = False) -> np.ndarray:
        key = (name, f"param:{dim}")
        if key not in self.slots:
            self.slots[key] = Slot(name, "param", self.sets.new(n), "Parameter", dim, consumes)
        return self.slots[key].ids

    def param_shape(self, name: str) -> tuple[int, ...]:
        obj = self.gm
        for part in name.split("."):
            obj = getattr(obj, part)
        return tuple(obj.shape)

    def rows_per_sample(self, node: fx.Node) -> int:
        """Rows of dim 0 per sample: it may hold more than the batch (a detector's RoIs of every image, N x R)."""
        out = self.shape(node)
        return max(out[0] // max(self.traced.example_shape[0], 1), 1) if out else 1

    def record_call(self, node: fx.Node, module: str, kind: str, macs_per_io: int, groups: int = 1,
                    keeps_groups: bool = False) -> None:
        self.calls.append(LayerCall(module, kind, macs_per_io, self.shape(node.args[0]), groups, keeps_groups))

    def note_probe(self, module: str, node: fx.Node) -> None:
        """A functional norm/conv/linear inside ``module``: its output may score the channels."""
        self.owner_probes.append((module, node))

    def freeze(self, ids, node: fx.Node | str, why: str) -> None:
        if ids is None:
            return
        op, layer = self._describe(node) if isinstance(node, fx.Node) else ("policy", node)
        self.sets.freeze(np.asarray(ids), Protection(op, layer, why))

    # ------------------------------------------------------------ walking the graph

    def run(self) -> ChannelGraph:
        for node in self.gm.graph.nodes:
            self.env[node] = self._visit(node)
        self._find_probes()
        return ChannelGraph(self.traced, self.sets, self.slots, self.probes, self.calls, self.input_ids, self.unknown,
                            self.attention, self.static_scores)

    def _visit(self, node: fx.Node) -> Any:
        if node.op == "placeholder":
            return self._placeholder(node)
        if node.op == "output":
            fx.node.map_aggregate(self._resolve(node.args), lambda v: self._protect_output(v, node))
            return None
        if node.op == "get_attr":
            return self._get_attr(node)
        rule, module = self._lookup(node)
        args, kwargs = self._resolve(node.args), self._resolve(node.kwargs)
        if rule is None:
            return self._unknown(node, args, kwargs)
        if isinstance(rule, LayerHandler):  # a layer: its handler's rule (and its MAC facts)
            return rule.rule(self, node, args, kwargs, module)
        fn = rules.RULES[rule.rule]
        return fn(self, node, rule, args, kwargs, module) if module is not None else fn(self, node, rule, args, kwargs)

    def _lookup(self, node: fx.Node):
        if node.op == "call_module":
            module = self.gm.get_submodule(node.target)
            return ops.lookup_module(module), module
        if node.op == "call_function":
            return ops.lookup_function(node.target), None
        if node.op == "call_method":
            return ops.lookup_method(node.target), None
        return None, None

    def _resolve(self, args):
        return fx.node.map_arg(args, lambda n: self.env[n]) if args else args

    def _placeholder(self, node: fx.Node) -> Any:
        if node.meta.get("tensor_meta") is None and node.args:  # an input left at its default
            return node.args[0]  # (the tool calls the model with the image batch alone)
        shape = self.shape(node)
        if len(shape) < 2:
            return Value(shape, why="model input")
        ids = self.sets.new(shape[1])
        self.sets.freeze(ids, Protection("input", node.name, "the model's input channels are fixed"))
        self.input_ids = np.concatenate([self.input_ids, ids])
        return Value(shape, 1, ids)

    def _get_attr(self, node: fx.Node) -> Any:
        obj = self.gm
        for part in node.target.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, torch.Tensor):
            return Value(tuple(obj.shape), why=f"parameter {node.target}", param=node.target)
        return obj

    def _protect_output(self, v: Any, node: fx.Node) -> Any:
        if isinstance(v, Value) and v.tracked:
            self.sets.freeze(v.ids, Protection("output", "model output", "the model's outputs keep their shape"))
        return v

    def _unknown(self, node: fx.Node, args, kwargs) -> Any:
        op, layer = self._describe(node)
        why = f"unknown op {op}: its channel semantics are not in the table"
        protection = Protection(op, layer, why)
        if protection not in self.unknown:
            self.unknown.append(protection)

        def lose(v):
            if isinstance(v, Value) and v.tracked:
                self.sets.freeze(v.ids, protection)
            return v

        fx.node.map_aggregate((args, kwargs), lose)
        meta = node.meta.get("tensor_meta")
        if meta is None:
            return Dynamic(node.name)
        return _values_like(meta, why)

    def _describe(self, node: fx.Node) -> tuple[str, str]:
        if node.op == "call_module":
            return type(self.gm.get_submodule(node.target)).__name__, node.target
        scope = node.meta.get("scope") or ""
        layer = f"{scope} ({node.name})" if scope else node.name
        if node.op == "call_method":
            return f"Tensor.{node.target}", layer
        target = getattr(node.target, "__name__", str(node.target))
        return target, layer

    # ------------------------------------------------------------ importance and cost

    def _find_probes(self) -> None:
        for node in self.gm.graph.nodes:
            if node.op != "call_module":
                continue
            rule = ops.lookup_module(self.gm.get_submodule(node.target))
            if not isinstance(rule, LayerHandler) or rule.probe not in ("norm", "layer"):
                continue
            if rule.probe == "layer" and self._feeds_norm(node):
                continue
            value = self.env[node]
            if isinstance(value, Value) and value.tracked:
                self.probes.append(Probe(node.target, value.axis, value.ids))
        self._owner_probes()

    def _owner_probes(self) -> None:
        """A module traced through (timm's BatchNormAct2d) is hooked as a whole: its output
        scores the channels when it carries exactly the functional op's channels."""
        wanted = {module for module, _ in self.owner_probes}
        last: dict[str, fx.Node] = {}
        for node in self.gm.graph.nodes:
            parts = (node.meta.get("scope") or "").split(".")
            for k in range(1, len(parts) + 1):
                if ".".join(parts[:k]) in wanted:
                    last[".".join(parts[:k])] = node
        done = {p.module for p in self.probes}
        for module, node in self.owner_probes:
            inner, out = self.env.get(node), self.env.get(last.get(module))
            if module in done or self._feeds_norm(node) or not (isinstance(inner, Value) and isinstance(out, Value)):
                continue
            if inner.tracked and out.tracked and out.axis == inner.axis and np.array_equal(out.ids, inner.ids) \
                    and out.shape == inner.shape:
                self.probes.append(Probe(module, out.axis, out.ids))
                done.add(module)

    def _feeds_norm(self, node: fx.Node) -> bool:
        users = [u for u in node.users if not (u.op == "call_function" and u.target is getattr)]
        if len(users) != 1:
            return False
        rule, module = self._lookup(users[0])
        if isinstance(rule, LayerHandler):
            return rule.probe == "norm"
        return rule is not None and rule.rule in NORM_FUNCTIONS


def _is_tensor_meta(m: Any) -> bool:
    return hasattr(m, "shape") and hasattr(m, "dtype")


def _values_like(meta: Any, why: str) -> Any:
    """Untracked Values mirroring a (possibly nested) tensor_meta structure."""
    if _is_tensor_meta(meta):
        return Value(tuple(meta.shape), why=why)
    if isinstance(meta, (list, tuple)):
        return type(meta)(_values_like(m, why) for m in meta) if not hasattr(meta, "_fields") else tuple(
            _values_like(m, why) for m in meta)
    if isinstance(meta, dict):
        return {k: _values_like(v, why) for k, v in meta.items()}
    return Dynamic("unknown")


def analyze(traced: TracedModel, *, layernorm_widths: bool = False) -> ChannelGraph:
    """``layernorm_widths``: channels normalised together by an ``nn.LayerNorm`` become prunable
    (the cut changes its statistics: proved against a reference normalising over the kept
    channels, see ``compress.prune.verify``; recovery is required)."""
    graph = Analyzer(traced, layernorm_widths).run()
    stuck = frozenset(_stuck_grouped_convs(graph))
    return Analyzer(traced, layernorm_widths, stuck).run() if stuck else graph


def _stuck_grouped_convs(graph: ChannelGraph) -> list[str]:
    """Grouped convs that whole-group removal leaves nothing to lose: all their outputs one unit
    (their groups are paths coupled elsewhere, e.g. by a radix view). Built again, they keep
    their groups and lose the same channels in each."""
    stuck = []
    for (name, role), slot in graph.slots.items():
        if role != "out" or slot.kind == "Parameter" or len(set(graph.roots(slot.ids).tolist())) > 1:
            continue
        try:
            module = graph.traced.module(name)
        except AttributeError:  # a slot named after no module
            continue
        if group_width_candidate(module):
            stuck.append(name)
    return stuck
