"""The reloadable pruned model: no pickle, no trust needed.

A folder holding ``compress.json`` (the original model's spec plus the cut record) and
``model.safetensors`` (the pruned weights). Loading rebuilds the original architecture from
code, replays the cuts (``compress.prune.surgery``) and loads the weights strictly; this module owns the
format (writing, reading the record and the weights), ``compress.models.loading.load_saved`` the rebuilding.
"""

from __future__ import annotations

import json
import logging
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from compress.artifacts.cuts import Cut, cuts_to_json
from compress.artifacts.names import RECORD, WEIGHTS
from compress.errors import CheckpointError, CompressError, one_line
from compress.spec import ModelSpec
from compress.util.atomic import atomic_path, write_text
from compress.util.version import __version__

FORMAT = "compress-pruned/1"
PROGRAM = "model.pt2"  # the pruned architecture as a torch.export program, for models from a pickle

log = logging.getLogger("compress")


def versions() -> dict[str, str]:
    import torchvision

    return {"compress": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


def save_pruned(folder: str | Path, model: nn.Module, spec: ModelSpec, cuts: list[Cut], *,
                extra: dict[str, Any] | None = None) -> Path:
    """Write the weights and the record into ``folder`` (which the caller creates atomically)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT})
    program = _write_program(folder, model, spec) if spec.kind == "pickle" else None
    record = {
        "format": FORMAT,
        **({"program": program} if program else {}),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
        "spec": spec.to_dict(),
        "cuts": cuts_to_json(cuts),
        **(extra or {}),
    }
    write_text(folder / RECORD, json.dumps(record, indent=1))
    return folder


def _write_program(folder: Path, model: nn.Module, spec: ModelSpec) -> str | None:
    """A model pruned from a pickled module: store its architecture as a ``torch.export`` program
    (any batch size), so the output reloads without that pickle (which may move, change or be
    untrusted on the next machine). Where the model cannot be exported, say what the output depends on."""
    example = torch.zeros(2, *spec.input_size)
    was = model.training
    try:
        model.eval()
        program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
        with atomic_path(folder / PROGRAM) as tmp:
            torch.export.save(program, str(tmp))
        return PROGRAM
    except CompressError:
        raise  # a failure to write (OutputError)
    except Exception as err:  # torch.export cannot capture this model's forward
        log.warning(f"the pruned model cannot be stored as a torch.export program ({one_line(err, 120)}): "
                    f"reloading this output re-runs the pickle {spec.checkpoint} with --trust, so keep that file "
                    "where it is and unchanged")
        return None
    finally:
        model.train(was)


def read_record(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / RECORD
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {path}: {err}", "the folder is not a complete compress output") from err
    if not isinstance(record, dict):
        raise CheckpointError(f"{path} holds a JSON {type(record).__name__}, not the record of a compress output",
                              "the folder is not a complete compress output")
    if record.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {one_line(repr(record.get('format')), 60)}, expected {FORMAT!r}",
                              "it was written by another version of compress")
    _check_shape(path, record)
    return record


# The record's fields a reader relies on, with the JSON types they must have (None: may be absent or null).
SHAPE = {"spec": dict, "cuts": list, "program": str, "config": dict, "original": dict}
SPEC_SHAPE = {"kind": str, "checkpoint": str, "arch": str, "arch_kwargs": dict, "input_size": list, "preprocess": dict}


def _check_shape(path: Path, record: dict[str, Any]) -> None:
    """One :class:`CheckpointError` line for a record whose fields are not the JSON types the loader reads."""
    def bad(where: str, value: Any, want: type) -> CheckpointError:
        return CheckpointError(f"{path}: {where} is a JSON {type(value).__name__}, expected "
                               f"{ {dict: 'object', list: 'array', str: 'string'}[want]}",
                               "the folder was modified after it was written")

    if "spec" not in record:
        raise CheckpointError(f"{path} has no \"spec\"", "the folder was modified after it was written")
    for key, want in SHAPE.items():
        if record.get(key) is not None and not isinstance(record[key], want):
            raise bad(f'"{key}"', record[key], want)
    spec = record["spec"]
    for key, want in SPEC_SHAPE.items():
        if spec.get(key) is not None and not isinstance(spec[key], want):
            raise bad(f'"spec.{key}"', spec[key], want)
    program = record.get("program")
    if program is not None and Path(program).name != program:
        raise CheckpointError(f"{path}: \"program\" must name a file in the folder, not {one_line(repr(program), 80)}",
                              "the folder was modified after it was written")


def weights_digest(path: str | Path) -> str:
    """sha256 (hex) of a weights file: what an export or a bench records as the model its files came from."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_of(path: str | Path) -> dict[str, str] | None:
    """``{"file", "sha256"}`` of the weights ``path`` holds (a compress folder's ``model.safetensors``, or a
    checkpoint file); None when there is no such file."""
    path = Path(path)
    weights = path / WEIGHTS if path.is_dir() else path
    return {"file": weights.name, "sha256": weights_digest(weights)} if weights.is_file() else None


def load_weights_into(model: nn.Module, folder: str | Path) -> int:
    """Load the folder's weights strictly into ``model`` (rebuilt by ``compress.models.loading`` from the
    record); return the size in bytes of the weights and the record."""
    from safetensors.torch import load_file

    folder = Path(folder)
    weights = folder / WEIGHTS
    try:
        state = load_file(str(weights))
    except Exception as err:
        raise CheckpointError(f"cannot read {weights}: {err}", "the folder is not a complete compress output") from err
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise CheckpointError(f"{weights} does not match the recorded cuts: {str(err).splitlines()[-1].strip()}",
                              "the folder was modified after it was written") from err
    if missing or unexpected:
        raise CheckpointError(f"{weights} does not match the recorded cuts (missing {missing[:3]}, unexpected {unexpected[:3]})",
                              "the folder was modified after it was written")
    return sum(p.stat().st_size for p in (weights, folder / RECORD))
