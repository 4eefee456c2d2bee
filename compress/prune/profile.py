"""Parameters and multiply-accumulates (MACs), per layer and in total.

Per-layer MACs come from forward hooks on every layer whose handler counts them
(``LayerHandler.macs``: convolutions, transposed convolutions and Linear; bias excluded, grouped
convolutions counted per group). The total also includes matrix products that
happen outside those layers (attention, ``torch.matmul``) and works for models without such
modules, e.g. a ``torch.export`` program's ``.module()``: it is measured with PyTorch's
``FlopCounterMode`` (FLOPs / 2) on the same forward pass. One MAC = one multiply + one add.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any, Iterator

import torch
import torch.nn as nn

from compress.errors import UsageError
from compress.layers.registry import handler_for
from compress.util.modules import device_of, eval_mode


@dataclass(frozen=True)
class LayerRow:
    """One counted layer (Conv/Linear) as seen on a forward pass at batch size 1."""

    name: str
    type: str
    in_channels: int
    out_channels: int
    kernel: tuple[int, ...] | None
    groups: int
    params: int
    macs: int
    output_shape: tuple[int, ...]  # without the batch dimension

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kernel"] = list(self.kernel) if self.kernel else None
        d["output_shape"] = list(self.output_shape)
        return d


@dataclass(frozen=True)
class MacsProfile:
    """Result of one profiling pass."""

    layers: list[LayerRow]
    total_macs: int  # all counted ops (>= layer_macs)
    layer_macs: int  # sum over ``layers``

    @property
    def other_macs(self) -> int:
        """MACs outside Conv/Linear modules (matmuls in attention, functional convs, export graphs)."""
        return self.total_macs - self.layer_macs


def count_params(model: nn.Module) -> int:
    """Number of (unique) parameters."""
    return sum(p.numel() for p in model.parameters())


def layer_macs(module: nn.Module, inputs: torch.Tensor, output: torch.Tensor) -> int:
    """MACs of one counted layer for this call, per sample (batch dimension divided out); 0 for others."""
    handler = handler_for(module)
    return handler.macs(module, inputs, output) if handler is not None and handler.macs is not None else 0


def profile_macs(model: nn.Module, input_shape: tuple[int, ...]) -> MacsProfile:
    """Run one forward pass at batch 1 on zeros of ``input_shape`` (C,H,W), hooks + FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    rows: list[LayerRow] = []
    handles = []
    names = {id(m): n for n, m in model.named_modules()}

    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        if not args or not isinstance(args[0], torch.Tensor) or not isinstance(output, torch.Tensor):
            return
        rows.append(_row(names.get(id(module), "?"), module, args[0], output))

    for module in model.modules():
        handler = handler_for(module)
        if handler is not None and handler.macs is not None:
            handles.append(module.register_forward_hook(hook))
    device = device_of(model)
    x = torch.zeros(1, *input_shape, device=device, dtype=_float_dtype_of(model))
    try:
        with eval_mode(model), torch.no_grad(), _countable_kernels(), FlopCounterMode(display=False) as counter:
            model(x)
        total = int(counter.get_total_flops()) // 2
    except Exception as err:  # noqa: BLE001 - a model that cannot run at this size
        text = " ".join(str(err).split())[:200]
        raise UsageError(
            f"the model fails on a 1x{'x'.join(map(str, input_shape))} input ({type(err).__name__}: {text})",
            "give the size it expects with --input-size or --preset",
        ) from err
    finally:
        for h in handles:
            h.remove()
    layer_sum = sum(r.macs for r in rows)
    total = max(total, layer_sum)
    return MacsProfile(layers=rows, total_macs=total, layer_macs=layer_sum)


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Total MACs of one forward pass at batch 1 and ``input_shape`` (C,H,W)."""
    return profile_macs(model, input_shape).total_macs


def per_layer_macs(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """MACs per Conv/Linear module name (a module called twice sums both calls)."""
    out: dict[str, int] = {}
    for row in profile_macs(model, input_shape).layers:
        out[row.name] = out.get(row.name, 0) + row.macs
    return out


def layer_table(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerRow]:
    """One row per Conv/Linear call, in execution order."""
    return profile_macs(model, input_shape).layers


def _row(name: str, module: nn.Module, x: torch.Tensor, out: torch.Tensor) -> LayerRow:
    c_in, c_out, kernel, groups = handler_for(module).row(module)
    return LayerRow(
        name=name,
        type=type(module).__name__,
        in_channels=c_in,
        out_channels=c_out,
        kernel=kernel,
        groups=groups,
        params=sum(p.numel() for p in module.parameters(recurse=False)),
        macs=layer_macs(module, x, out),
        output_shape=tuple(out.shape[1:]),
    )


@contextlib.contextmanager
def _countable_kernels() -> Iterator[None]:
    """Route attention through ops the FLOP counter sees.

    The fused CPU kernels (``nn.MultiheadAttention``'s fast path, flash SDPA) are invisible to
    ``FlopCounterMode``; with them ViT-B/16 would count 11.3 G instead of its 17.6 G MACs.
    """
    mha = getattr(torch.backends, "mha", None)
    previous = mha.get_fastpath_enabled() if mha is not None else None
    with contextlib.ExitStack() as stack:
        if mha is not None:
            mha.set_fastpath_enabled(False)
            stack.callback(mha.set_fastpath_enabled, previous)
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            stack.enter_context(sdpa_kernel([SDPBackend.MATH]))
        except ImportError:
            pass
        yield


def _float_dtype_of(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


__all__ = [
    "LayerRow",
    "MacsProfile",
    "count_macs",
    "count_params",
    "layer_table",
    "per_layer_macs",
    "profile_macs",
]
