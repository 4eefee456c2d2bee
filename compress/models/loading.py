"""One entry point from "a path the user gave" to a runnable model plus its provenance.

Dispatch in :func:`load_model`:

- a folder holding ``compress.json``: a pruned model written by this tool (the format is
  ``compress.artifacts.saved``; :func:`load_saved` rebuilds it);
- ``*.pt2``: a ``torch.export`` program, run through ``.module()`` (spec kind ``export``);
- a pickled whole ``nn.Module`` (needs ``trust``): spec kind ``pickle``;
- anything else holding weights (torch.save dicts, safetensors): a state_dict, built with
  ``--arch`` and loaded strictly (spec kind ``state_dict``).
"""

from __future__ import annotations

import dataclasses
import json
import types
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from compress.calibrate.preprocess import PRESETS, Preprocess, resolve_preprocess
from compress.models.checkpoint import find_module, find_state_dict, load_weights, read_checkpoint
from compress.errors import CheckpointError, UsageError, one_line
from compress.models.arch import canonical_arch, default_preset_for, is_trusted_arch, resolve_arch
from compress.artifacts.cuts import Cut, cuts_from_json
from compress.artifacts.saved import RECORD, load_weights_into, read_record
from compress.spec import LoadedModel, ModelSpec
from compress.prune.surgery import apply_cuts

Note = Callable[[str], None]


def is_saved_folder(path: str | Path) -> bool:
    """True for a folder written by compress (it holds ``compress.json``)."""
    path = Path(path)
    return path.is_dir() and (path / RECORD).is_file()


def load_model(
    path: str | Path,
    *,
    arch: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    trust: bool = False,
    input_size: Any = None,
    preset: str | None = None,
    mean: Any = None,
    std: Any = None,
    channel_order: str | None = None, resize_kernel: str | None = None, letterbox: bool | None = None,  # issue 49
    prefer_ema: bool = False,
    on_note: Note | None = None,
) -> LoadedModel:
    """Load ``path`` as a model in eval mode on the CPU.

    ``input_size`` (int, "HxW", "3xHxW" or a tuple), ``preset``, ``mean`` and ``std`` fix the
    preprocessing recorded in ``spec.preprocess``; without them the architecture's own preset is
    used (``PREPROCESS`` in its module; ``imagenet`` for torchvision/timm), and for ``.pt2`` the
    shape the program was exported at. ``on_note`` receives human-readable remarks (which key the
    weights came from, options that were ignored).
    """
    path = Path(path)
    note: Note = on_note or (lambda _msg: None)
    if arch_kwargs and not arch:
        raise UsageError("--arch-kwargs needs --arch", "name the architecture with --arch")
    if is_saved_folder(path):
        if arch:
            note(f"--arch {arch} ignored: {path} is a compress output folder that records its architecture")
        return load_saved(path, trust=trust)
    preprocess_args = dict(preset=preset, input_size=input_size, mean=mean, std=std, channel_order=channel_order,
                           resize_kernel=resize_kernel, letterbox=letterbox)
    if any(v is not None for v in preprocess_args.values()):
        _preprocess(preprocess_args, fallback=None)  # a bad option fails before a slow load
    obj = read_checkpoint(path, trust=trust)
    size = path.stat().st_size

    if isinstance(obj, torch.export.ExportedProgram):
        if arch:
            note(f"--arch {arch} ignored: {path.name} is a torch.export program with its own graph")
        pre = _preprocess(preprocess_args, fallback=_exported_input_hw(obj))
        spec = ModelSpec(kind="export", checkpoint=str(path.resolve()), input_size=pre.input_shape,
                         preprocess=pre.to_dict())
        return LoadedModel(model=program_module(obj), spec=spec, path=path, size_bytes=size)

    module, where = find_module(obj, prefer_ema=prefer_ema)
    if module is not None:
        if arch:
            note(f"--arch {arch} ignored: {path.name} holds a whole pickled model ({where})")
        cls = type(module)
        pre = _preprocess(preprocess_args, fallback=default_preset_for(f"{cls.__module__}:{cls.__name__}"))
        spec = ModelSpec(kind="pickle", checkpoint=str(path.resolve()), input_size=pre.input_shape,
                         preprocess=pre.to_dict())
        note(f"model: {where} ({cls.__module__}.{cls.__name__})")
        from compress.detection import raw_network

        return LoadedModel(model=raw_network(module.cpu().eval()), spec=spec, path=path, size_bytes=size)

    state, where = find_state_dict(obj, path, prefer_ema=prefer_ema)
    if not arch:
        raise CheckpointError(
            f"{path} is a state_dict (weights only, no model class): name its architecture with --arch",
            "e.g. --arch torchvision:resnet18, --arch cifar_resnet20, --arch package.module:factory "
            "or --arch path/to/file.py:factory",
        )
    arch = canonical_arch(arch)
    kwargs = dict(arch_kwargs or {})
    model = resolve_arch(arch, kwargs)
    load_weights(model, state, path, arch=arch)
    note(f"weights: {where}")
    pre = _preprocess(preprocess_args, fallback=default_preset_for(arch))
    spec = ModelSpec(kind="state_dict", checkpoint=str(path.resolve()), arch=arch, arch_kwargs=kwargs,
                     input_size=pre.input_shape, preprocess=pre.to_dict())
    return LoadedModel(model=model.cpu().eval(), spec=spec, path=path, size_bytes=size)


def program_module(program: Any) -> nn.Module:
    """A ``torch.export`` program as a module. It was captured in inference form, so ``eval()`` and
    ``train(False)`` are accepted (they change nothing); ``train()`` is refused with one clear line,
    since its BatchNorms and dropouts cannot train (torch's own module refuses both with a traceback)."""
    module = program.module()

    def train(self, mode: bool = True):
        if mode:
            raise UsageError("this model is a torch.export program, captured for inference: it cannot be trained",
                             "pass --no-recover, or start from the original checkpoint")
        for m in self.modules():
            m.training = False
        return self

    module.train = types.MethodType(train, module)
    module.eval = types.MethodType(lambda self: self.train(False), module)
    return module.eval()  # say what it is: code that restores a mode must not ask it to train


# factory arguments with which torchvision/timm read or download weights files instead of building from code alone
FETCHING_KWARGS = frozenset({"pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "weights",
                             "weights_backbone", "file"})


def require_trusted_arch(arch: str | None, *, trust: bool, where: str, kwargs: dict[str, Any] | None = None) -> None:
    """Refuse, before importing anything, to build an architecture a file (``where``: a folder's
    ``compress.json``) names when it is not the tool's own (:func:`compress.models.arch.is_trusted_arch`)
    and the user did not pass ``--trust``: building it would run code that file chose, like a pickle."""
    if trust:
        return
    fetching = sorted(k for k, v in (kwargs or {}).items() if k in FETCHING_KWARGS and v not in (None, False, "none"))
    if is_trusted_arch(arch) and not fetching:
        return
    if fetching:
        raise CheckpointError(
            f"{where} builds {one_line(repr(arch), 80)} with {', '.join(fetching)} set: the architecture would read or "
            "download files this folder chose, so nothing was run",
            "pass --trust (trust=True in Python) if you trust the folder")
    raise CheckpointError(
        f"{where} names the architecture {one_line(repr(arch), 120)}, which is not torchvision:, timm:, a shipped "
        "architecture nor in COMPRESS_TRUSTED_ARCHS: building it would run code this folder chose, so nothing was run",
        "pass --trust (trust=True in Python) if you trust the folder and that code, as for a pickle")


def load_from_spec(spec: ModelSpec, *, trust: bool = False, arch_trusted: bool = False,
                   where: str = "the model spec") -> LoadedModel:
    """Rebuild the original model a :class:`ModelSpec` describes, with its recorded preprocessing.

    ``spec`` comes from a file (``where``), so its architecture must be trusted (:func:`require_trusted_arch`)
    unless ``trust`` or ``arch_trusted`` (this process already built it: the memory probe's ``spec.json``)."""
    if spec.kind == "state_dict":
        require_trusted_arch(spec.arch, trust=trust or arch_trusted, where=where, kwargs=spec.arch_kwargs)
    loaded = load_model(spec.checkpoint, arch=spec.arch, arch_kwargs=spec.arch_kwargs, trust=trust,
                        input_size=spec.input_size)
    if spec.preprocess is not None:
        pre = Preprocess.from_dict(spec.preprocess)
        loaded.spec = dataclasses.replace(loaded.spec, preprocess=pre.to_dict(), input_size=pre.input_shape)
    return loaded


def build_pruned(spec: ModelSpec, cuts: list[Cut], *, trust: bool = False, where: str = "the model spec") -> nn.Module:
    """The pruned architecture with the original's initial weights (then overwritten by loading)."""
    if spec.kind == "state_dict":
        require_trusted_arch(spec.arch, trust=trust, where=where, kwargs=spec.arch_kwargs)
        model = resolve_arch(spec.arch, dict(spec.arch_kwargs or {}))
    else:
        if spec.kind == "pickle" and not trust:
            raise CheckpointError(f"this model was pruned from a pickled module ({spec.checkpoint})",
                                  "reloading it runs that pickle: pass --trust if you trust it")
        model = load_from_spec(spec, trust=trust, where=where).model
    return apply_cuts(model, cuts)


def load_saved(folder: str | Path, *, trust: bool = False) -> LoadedModel:
    """A folder written by ``compress prune``: the original rebuilt, the cuts replayed, the weights loaded."""
    folder = Path(folder)
    record = read_record(folder)
    where = str(folder / RECORD)
    try:
        spec = ModelSpec.from_dict(record["spec"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: \"spec\" is not a model spec ({one_line(err, 120)})",
                              "the folder was modified after it was written") from err
    code_ok = spec.kind == "state_dict" and (trust or (is_trusted_arch(spec.arch) and not
                                                      FETCHING_KWARGS & set(spec.arch_kwargs or {})))
    if record.get("program") and not code_ok:  # self-contained: no pickle, no architecture code to run
        model = program_module(read_checkpoint(folder / record["program"], trust=False))
    else:
        model = build_pruned(spec, cuts_from_json(record.get("cuts")), trust=trust, where=where)
    size = load_weights_into(model, folder)
    return LoadedModel(model=model.eval(), spec=spec, path=folder, size_bytes=size, pruned=True, record=record)


def load_for_bench(path: str, trust: bool = False) -> nn.Module:
    """The model to measure in a fresh process: a compress folder, or a ``spec.json``.

    ``spec.json`` holds :meth:`ModelSpec.to_dict` and may add ``"trust": true`` (the parent
    process writes it only for a file the user already trusted); ``trust`` does the same for a
    folder pruned from a pickled module.
    """
    p = Path(path)
    if is_saved_folder(p):
        return load_model(p, trust=trust).model
    if p.suffix == ".json" and p.is_file():
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError) as err:
            raise CheckpointError(f"cannot read model spec {p}: {err}", "write it with ModelSpec.to_dict()") from err
        trust = bool(data.pop("trust", False)) or trust
        arch_trusted = bool(data.pop("arch_trusted", False))
        try:
            spec = ModelSpec.from_dict(data)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{p} is not a model spec: {err}", "write it with ModelSpec.to_dict()") from err
        return load_from_spec(spec, trust=trust, arch_trusted=arch_trusted, where=str(p)).model
    raise CheckpointError(f"{p} is neither a compress output folder nor a spec.json", "pass one of those")


def _preprocess(args: dict[str, Any], fallback: Any):
    """Resolve preprocessing; ``fallback`` (a preset name, or an exported ``(H, W)``) fills in what was not given."""
    args = dict(args)
    if args["preset"] is None:
        if isinstance(fallback, str):
            args["preset"] = fallback
        elif isinstance(fallback, tuple) and args["input_size"] is None:
            named = [name for name, pre in PRESETS.items() if pre.input_size == fallback]
            if named:
                args["preset"] = named[0]
            else:
                args["input_size"] = fallback
    return resolve_preprocess(**args, default="imagenet")


def _exported_input_hw(program: Any) -> tuple[int, int] | None:
    """``(H, W)`` of the program's image input when it was exported with a static 3xHxW shape."""
    try:
        user_inputs = set(program.graph_signature.user_inputs)
        for node in program.graph.nodes:
            if node.op == "placeholder" and node.name in user_inputs:
                shape = tuple(node.meta["val"].shape)
                if len(shape) == 4 and all(isinstance(s, int) for s in shape) and shape[1] == 3:
                    return (shape[2], shape[3])
                return None
    except (AttributeError, KeyError, TypeError):
        return None
    return None


__all__ = ["build_pruned", "is_saved_folder", "load_for_bench", "load_from_spec", "load_model", "load_saved",
           "require_trusted_arch"]
