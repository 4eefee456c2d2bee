"""``compress inspect CKPT``: what a model is, layer by layer, and what it costs."""

from __future__ import annotations

from typing import Any

import click

from compress.cli.options import json_option, load_kwargs, model_options, preprocess_kwargs, preprocess_options
from compress.cli.output import emit_json, fmt, human_bytes, info, table


@click.command()
@click.argument("checkpoint", type=click.Path(path_type=str))
@model_options
@preprocess_options
@click.option("--layers/--no-layers", default=True, show_default=True, help="List every Conv/Linear layer.")
@json_option
def inspect(checkpoint: str, layers: bool, as_json: bool, **params: Any) -> None:
    """Show a model's layers, parameters and MACs.

    CHECKPOINT is a checkpoint file (torch.save state_dict or whole model, .pt2, .safetensors)
    or a folder written by `compress prune`.
    """
    from compress.models.loading import is_saved_folder, load_model
    from compress.prune.profile import count_params, profile_macs

    notes: list[str] = []

    def note(message: str) -> None:
        notes.append(message)
        info(message)

    loaded = load_model(checkpoint, **load_kwargs(params), on_note=note)
    input_shape = _input_shape(loaded, params, folder=is_saved_folder(checkpoint))
    prof = profile_macs(loaded.model, input_shape)
    n_params = count_params(loaded.model)
    spec = loaded.spec

    result: dict[str, Any] = {
        "path": str(loaded.path),
        "kind": "pruned" if loaded.pruned else spec.kind,
        "pruned": loaded.pruned,
        "arch": spec.arch,
        "arch_kwargs": spec.arch_kwargs,
        "params": n_params,
        "macs": prof.total_macs,
        "layer_macs": prof.layer_macs,
        "other_macs": prof.other_macs,
        "input_size": list(input_shape),
        "size_bytes": loaded.size_bytes,
        "preprocess": spec.preprocess,
        "layers": [row.to_dict() for row in prof.layers] if layers else [],
        "notes": notes,
    }
    if loaded.pruned:
        result["original"] = {"checkpoint": spec.checkpoint, "kind": spec.kind, "arch": spec.arch}
    if as_json:
        emit_json(result)
        return

    if layers:
        table(
            f"Layers of {loaded.path} at input {_shape_text(input_shape)}",
            ["layer", "type", "in→out", "kernel", "groups", "params", "MACs", "output"],
            [
                (r.name, r.type, f"{r.in_channels}→{r.out_channels}", _shape_text(r.kernel) if r.kernel else "-",
                 str(r.groups), r.params, r.macs, _shape_text(r.output_shape))
                for r in prof.layers
            ],
        )
    rows: list[tuple[str, Any]] = [
        ("params", f"{n_params:,} ({fmt(n_params)})"),
        (f"MACs at {_shape_text(input_shape)}", f"{prof.total_macs:,} ({fmt(prof.total_macs)})"),
    ]
    if prof.other_macs:
        rows.append(("  not in a Conv/Linear module", f"{prof.other_macs:,} ({fmt(prof.other_macs)})"))
    rows += [
        ("size on disk", f"{loaded.size_bytes:,} B ({human_bytes(loaded.size_bytes)})"),
        ("input size", _shape_text(input_shape)),
        ("source", result["kind"] if not loaded.pruned else f"pruned folder (compress), original {spec.kind}"),
    ]
    if spec.arch:
        rows.append(("arch", spec.arch + (f" {spec.arch_kwargs}" if spec.arch_kwargs else "")))
    if loaded.pruned:
        rows.append(("pruned from", spec.checkpoint))
    table("Totals", ["quantity", "value"], rows)


def _input_shape(loaded, params: dict[str, Any], *, folder: bool) -> tuple[int, int, int]:
    """The (C,H,W) to profile at: the loaded spec's, or the options' for a saved folder."""
    pre = preprocess_kwargs(params)
    if folder and (pre["input_size"] is not None or pre["preset"] is not None):
        from compress.calibrate.preprocess import resolve_preprocess

        return resolve_preprocess(**pre).input_shape
    if loaded.spec.input_size:
        return tuple(loaded.spec.input_size)  # type: ignore[return-value]
    return (3, 224, 224)


def _shape_text(shape) -> str:
    return "x".join(str(int(s)) for s in shape)
