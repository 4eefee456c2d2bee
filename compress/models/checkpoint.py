"""Read the checkpoints users bring, find the weights inside, load them strictly.

Formats: ``torch.save`` files (zip and legacy non-zip, CUDA-saved tensors), pickled whole modules
(only with ``trust``), ``torch.export`` programs (``.pt2``) and safetensors files. Wrapped state
dicts (``{"state_dict": ...}``, ``{"model": ...}``, EMA copies, ...) and ``DataParallel`` /
``torch.compile`` key prefixes are handled; every failure is a :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from compress.errors import CheckpointError, one_line

# Keys under which training scripts commonly store the model weights, most likely first.
PLAIN_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "weights", "params", "module")
EMA_KEYS = ("model_ema", "state_dict_ema", "ema", "ema_state_dict", "ema_model", "model_ema_state_dict")
# Prefixes that wrappers add to every key: DataParallel/DDP, torch.compile, Lightning-style wrappers.
STRIP_PREFIXES = ("module.", "_orig_mod.", "model.")

_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")
_TRUST_HINT = "pass --trust if you trust the file, or save a state_dict"


def read_checkpoint(path: str | Path, *, trust: bool = False) -> Any:
    """Load whatever ``path`` holds: a dict, an ``nn.Module`` (trusted), or an ``ExportedProgram``."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist", "check the path")
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a folder, not a checkpoint file",
            "give a checkpoint file, or a folder written by compress (it holds compress.json)",
        )
    if path.suffix == ".pt2":
        return _read_exported(path)
    if path.suffix == ".safetensors" or _looks_like_safetensors(path):
        return _read_safetensors(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for bad files
        unsafe = _UNSAFE_GLOBAL.search(str(err))
        if unsafe is None:
            raise _unreadable(path, err) from err
        global_name = unsafe.group(1)
    if not trust:
        raise CheckpointError(
            f"{path} holds pickled Python objects (e.g. a whole nn.Module; found {global_name}); "
            "loading it runs code",
            _TRUST_HINT,
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (AttributeError, ModuleNotFoundError, ImportError) as err:
        raise CheckpointError(
            f"{path} pickles classes this Python cannot import ({one_line(err)})",
            "make the code that defined the model importable, or save a state_dict and use --arch",
        ) from err
    except Exception as err:  # noqa: BLE001
        raise _unreadable(path, err) from err


def _unreadable(path: Path, err: BaseException) -> CheckpointError:
    reason = _reason(err)
    if path.stat().st_size == 0:
        return CheckpointError(f"{path} is empty (0 bytes)", "give a file written by torch.save")
    if isinstance(err, EOFError) or "EOF" in reason or "central directory" in reason:
        what = "is truncated"
    elif isinstance(err, PermissionError):
        return CheckpointError(f"cannot read {path}: permission denied", "check the file's permissions")
    else:
        what = "is corrupt or not a PyTorch checkpoint"
    return CheckpointError(
        f"{path} {what} ({reason})",
        "give a file written by torch.save, torch.export.save or safetensors",
    )


def _reason(err: BaseException) -> str:
    """The informative part of a loader's (often very long) error text."""
    text = one_line(err)
    inner = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\s*Check the documentation|$)", " ".join(str(err).split()))
    if inner:
        text = inner.group(1)
    elif isinstance(err, RuntimeError) and ". " in text:
        text = text.split(". ")[0]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _looks_like_safetensors(path: Path) -> bool:
    """safetensors: 8-byte little-endian header length, then a JSON header starting with '{'."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
    except OSError:
        return False
    if len(head) < 9 or head[8:9] != b"{":
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= path.stat().st_size - 8


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # noqa: BLE001 - SafetensorError and friends
        raise _unreadable(path, err) from err


def _read_exported(path: Path) -> Any:
    import logging

    logger = logging.getLogger("torch.export")  # it logs a full traceback before raising
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        return torch.export.load(str(path))
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(
            f"{path} is not a loadable torch.export program ({type(err).__name__}: {one_line(err)})",
            "write it with torch.export.save(torch.export.export(model, args), path)",
        ) from err
    finally:
        logger.setLevel(level)


def is_tensor_dict(obj: Any) -> bool:
    """True for a non-empty mapping whose values are all tensors (a bare state_dict)."""
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def find_module(obj: Any, *, prefer_ema: bool = False) -> tuple[nn.Module | None, str]:
    """A whole pickled ``nn.Module`` in ``obj`` (itself, or under a wrapper key), with where it was."""
    if isinstance(obj, nn.Module):
        return obj, "the pickled module"
    if isinstance(obj, Mapping):
        for key in _key_order(prefer_ema):
            if isinstance(obj.get(key), nn.Module):
                return obj[key], f"the pickled module under [{key!r}]"
    return None, ""


def find_state_dict(obj: Any, path: str | Path, *, prefer_ema: bool = False) -> tuple[dict[str, torch.Tensor], str]:
    """Like :func:`extract_state_dict`, also returning a description of where the weights were found."""
    state, where = _search(obj, prefer_ema, depth=0, trail="")
    if state is None:
        raise CheckpointError(f"{path}: {where}", "save model.state_dict(), or a dict with it under 'state_dict'")
    state, stripped = strip_prefixes(state)
    if stripped:
        where += f", prefix {stripped!r} stripped"
    return state, where


def extract_state_dict(obj: Any, path: str | Path, *, prefer_ema: bool = False) -> dict[str, torch.Tensor]:
    """The weights inside ``obj``: a bare state_dict, a wrapped one, a nested one, or a module's.

    Plain model weights win over EMA copies unless ``prefer_ema``. Consistent wrapper prefixes
    (``module.``, ``_orig_mod.``, ``model.``) are stripped.
    """
    return find_state_dict(obj, path, prefer_ema=prefer_ema)[0]


def _key_order(prefer_ema: bool) -> tuple[str, ...]:
    return EMA_KEYS + PLAIN_KEYS if prefer_ema else PLAIN_KEYS + EMA_KEYS


def _search(obj: Any, prefer_ema: bool, depth: int, trail: str) -> tuple[dict[str, torch.Tensor] | None, str]:
    label = f"checkpoint{trail}" if trail else "checkpoint"
    if isinstance(obj, nn.Module):
        return dict(obj.state_dict()), f"state_dict() of the pickled module at {label}"
    if not isinstance(obj, Mapping):
        return None, f"holds a {type(obj).__name__}, not a state_dict"
    if not obj:
        return None, "holds an empty dict, no weights"
    if is_tensor_dict(obj):
        return dict(obj), label if trail else "a bare state_dict"
    if depth < 3:
        for key in _key_order(prefer_ema):
            if key in obj and isinstance(obj[key], (Mapping, nn.Module)):
                found, where = _search(obj[key], prefer_ema, depth + 1, f"{trail}[{key!r}]")
                if found is not None:
                    return found, where
        found = []  # weights under keys no convention names: usable only when unambiguous
        for key, value in obj.items():
            if isinstance(value, Mapping) and key not in PLAIN_KEYS + EMA_KEYS:
                state, where = _search(value, prefer_ema, depth + 1, f"{trail}[{key!r}]")
                if state is not None:
                    found.append((state, where))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            return None, (
                f"several candidate state_dicts inside ({', '.join(w for _, w in found[:4])}); "
                "cannot tell which holds the model"
            )
    keys = ", ".join(repr(k) for k in list(obj)[:8]) + (" …" if len(obj) > 8 else "")
    return None, f"found no state_dict inside (top-level keys: {keys})"


def strip_prefixes(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """Remove wrapper prefixes shared by every key; returns the new dict and what was stripped."""
    stripped = ""
    changed = True
    while changed and state:
        changed = False
        for prefix in STRIP_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                stripped += prefix
                changed = True
    return state, stripped


def load_weights(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], path: str | Path, *, arch: str | None = None
) -> nn.Module:
    """Strictly load ``state_dict`` into ``model``; a mismatch is one readable CheckpointError line."""
    expected = model.state_dict()
    state = _align_prefix(dict(state_dict), expected)
    filled = [k for k in expected if k.endswith("num_batches_tracked") and k not in state]
    for key in filled:  # old checkpoints predate BatchNorm's counter
        state[key] = expected[key]
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    target = f"--arch {arch}" if arch else "the model"
    if missing or unexpected or mismatched:
        parts = []
        if missing and unexpected and len(unexpected) == len(state) - len(filled):
            parts.append(
                f"no checkpoint key matches (checkpoint has e.g. {unexpected[0]!r}, model expects e.g. {missing[0]!r})"
            )
        else:
            if mismatched:
                parts.append(f"shape mismatches ({len(mismatched)}): {_shorten(mismatched)}")
            if missing:
                parts.append(f"missing keys ({len(missing)}): {_shorten(missing)}")
            if unexpected:
                parts.append(f"unexpected keys ({len(unexpected)}): {_shorten(unexpected)}")
        raise CheckpointError(
            f"{path} does not fit {target}: " + "; ".join(parts),
            "check --arch / --arch-kwargs (e.g. num_classes)",
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(
            f"{path} does not fit {target}: {one_line(err)}", "check --arch / --arch-kwargs (e.g. num_classes)"
        ) from err
    return model


def _align_prefix(state: dict[str, torch.Tensor], expected: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """If the model itself uses a wrapper prefix the checkpoint lacks (or vice versa), line them up."""
    if not state or set(state) & set(expected):
        return state
    for prefix in STRIP_PREFIXES:
        if expected and all(k.startswith(prefix) for k in expected):
            candidate = {prefix + k: v for k, v in state.items()}
            if set(candidate) & set(expected):
                return candidate
        if all(k.startswith(prefix) for k in state):
            candidate = {k[len(prefix):]: v for k, v in state.items()}
            if set(candidate) & set(expected):
                return candidate
    return state


def _shorten(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" … and {len(items) - limit} more" if len(items) > limit else "")


__all__ = [
    "EMA_KEYS",
    "PLAIN_KEYS",
    "extract_state_dict",
    "find_module",
    "find_state_dict",
    "is_tensor_dict",
    "load_weights",
    "read_checkpoint",
    "strip_prefixes",
]
