"""Proxies of a known length: ``list(x.chunk(2, 1))`` traced without rewriting the model.

torch.fx refuses to iterate a Proxy (it cannot know how many values there are), which stops a trace at
``y = list(self.cv1(x).chunk(2, 1))`` (Ultralytics C2f/C3k2) or ``a, b = x.split((c, c), 1)`` used as a
list. For ``chunk`` with a constant count and ``split`` with constant sizes (the number of outputs is in
the code, not in the data) the proxy yields ``proxy[i]`` for each output, as unpacking does; the graph
rules for chunk/split/getitem then apply as usual. Anything else still fails (and the module becomes
opaque, its channels protected).
"""

from __future__ import annotations


import torch.fx as fx


def known_length(kind: str, target, args: tuple, kwargs: dict) -> int | None:
    """How many values ``chunk``/``split`` return when the code fixes it, else None."""
    name = target if isinstance(target, str) else getattr(target, "__name__", "")
    if kind not in ("call_method", "call_function") or name not in ("chunk", "split"):
        return None
    spec = args[1] if len(args) > 1 else kwargs.get("chunks", kwargs.get("split_size_or_sections",
                                                                          kwargs.get("split_size")))
    if name == "chunk" and isinstance(spec, int) and not isinstance(spec, bool):
        return spec  # chunk may return fewer when the axis is short: getitem past the end then fails at shape prop
    if name == "split" and isinstance(spec, (list, tuple)) and all(isinstance(s, int) for s in spec):
        return len(spec)
    return None


class SizedProxy(fx.Proxy):
    """A proxy of a tuple whose length the code fixes."""

    def __init__(self, node: fx.Node, tracer, length: int):
        super().__init__(node, tracer)
        self._length = length

    def __iter__(self):
        return (self[i] for i in range(self._length))

    def __len__(self) -> int:
        return self._length


def sized_proxy(tracer, proxy: fx.Proxy, kind: str, target, args: tuple, kwargs: dict) -> fx.Proxy:
    n = known_length(kind, target, args, kwargs)
    return SizedProxy(proxy.node, tracer, n) if n is not None and isinstance(proxy, fx.Proxy) else proxy


__all__ = ["SizedProxy", "known_length", "sized_proxy"]
