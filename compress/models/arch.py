"""Turn an ``--arch`` spec into a freshly built ``nn.Module``.

Accepted forms:

- ``torchvision:resnet18`` — ``torchvision.models.get_model(name, weights=None, **kwargs)``
- ``timm:<name>`` — ``timm.create_model(name, pretrained=False, **kwargs)`` (needs timm)
- ``package.module:factory`` — any importable factory
- ``path/to/file.py:factory`` — a factory in a Python file, imported by path
- short aliases for the shipped architectures: ``cifar_resnet20`` … ``cifar_resnet110``, ``digits``
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch.nn as nn

from compress.detection.family import preset_for_class
from compress.errors import ArchError, one_line

ALIASES: dict[str, str] = {
    **{f"cifar_resnet{d}": f"compress.archs.cifar_resnet:resnet{d}" for d in (20, 32, 44, 56, 110)},
    "digits": "compress.archs.digits:digitnet",
    "segdigits": "compress.archs.segdigits:segdigitnet",
    "detdigits": "compress.archs.detdigits:detdigitnet",
}

# What a saved folder may name without --trust: the tool's own code (compress.archs, these detector builders),
# torchvision's and timm's model lists, and the module prefixes the user lists in COMPRESS_TRUSTED_ARCHS.
# Anything else (a file, an arbitrary module:attr such as os:system) runs code the folder chose.
BUILTIN_FACTORIES = frozenset({"compress.detection.yolo:build"})
HUBS = ("torchvision", "timm")
TRUSTED_ENV = "COMPRESS_TRUSTED_ARCHS"

EXAMPLE_FORMS = (
    "torchvision:resnet18, timm:<name>, package.module:factory, path/to/file.py:factory, "
    + ", ".join(ALIASES)
)


def canonical_arch(spec: str) -> str:
    """Expand a short alias (``cifar_resnet20``) to its ``module:factory`` form."""
    return ALIASES.get(spec.strip(), spec.strip())


def is_trusted_arch(spec: str | None) -> bool:
    """Whether building ``spec`` runs only code the tool owns or the user listed (no import happens here).

    Allowed: ``torchvision:<name>``, ``timm:<name>``, the shipped aliases and ``compress.archs.*``
    factories, the built-in detector builders (:data:`BUILTIN_FACTORIES`), and modules under a prefix listed
    (comma-separated) in the ``COMPRESS_TRUSTED_ARCHS`` environment variable. Never a file path."""
    if not isinstance(spec, str):
        return False
    spec = canonical_arch(spec)
    prefix, sep, name = spec.rpartition(":")
    if not sep or not name.isidentifier() or name.startswith("_"):
        return False
    if prefix in HUBS or spec in ALIASES.values() or spec in BUILTIN_FACTORIES:
        return True
    if _looks_like_path(prefix) or not all(part.isidentifier() for part in prefix.split(".")):
        return False
    listed = [p.strip() for p in os.environ.get(TRUSTED_ENV, "").split(",") if p.strip()]
    return any(prefix == p or prefix.startswith(p + ".") for p in ("compress.archs", *listed))


def parse_arch_kwargs(text: str | None) -> dict[str, Any]:
    """``"num_classes=100,width=0.5,pretrained=false"`` -> ``{"num_classes": 100, ...}``.

    Values become int, float, bool (true/false), None (none/null) or str.
    """
    out: dict[str, Any] = {}
    if not text or not text.strip():
        return out
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ArchError(
                f"--arch-kwargs item {item!r} is not key=value",
                "write them like num_classes=100,width=0.5",
            )
        out[key] = _typed(raw.strip())
    return out


def _typed(raw: str) -> Any:
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(raw)
        except ValueError:
            pass
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw


def resolve_arch(spec: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """Build the model named by ``spec`` with ``kwargs`` (random init, no downloads)."""
    kwargs = dict(kwargs or {})
    factory, where = resolve_factory(spec)
    try:
        model = factory(**kwargs)
    except ArchError:
        raise
    except Exception as err:  # noqa: BLE001 - user code may raise anything
        raise ArchError(
            f"--arch {spec}: {where}({_fmt_kwargs(kwargs)}) raised {type(err).__name__}: {one_line(err, 200)}",
            "check --arch-kwargs",
        ) from err
    if not isinstance(model, nn.Module):
        raise ArchError(
            f"--arch {spec}: {where} returned {type(model).__name__}, not a torch.nn.Module",
            "point --arch at a function or class that builds the model",
        )
    from compress.detection import raw_network

    return raw_network(model)  # a detector: its raw-output network (compress.detection)


def resolve_factory(spec: str) -> tuple[Callable[..., Any], str]:
    """Return ``(factory, description)`` for an ``--arch`` spec without calling it."""
    spec = canonical_arch(spec)
    prefix, sep, name = spec.rpartition(":")
    if not sep or not prefix or not name:
        close = difflib.get_close_matches(spec, list(ALIASES), n=3)
        raise ArchError(
            f"--arch {spec!r} is not a known alias nor of the form module:factory"
            + (f"; did you mean {', '.join(close)}?" if close else ""),
            f"forms: {EXAMPLE_FORMS}",
        )
    if prefix == "torchvision":
        return _torchvision_factory(name), f"torchvision.models.get_model({name!r})"
    if prefix == "timm":
        return _timm_factory(name), f"timm.create_model({name!r})"
    module = _import_file(prefix) if _looks_like_path(prefix) else _import_module(prefix)
    factory = getattr(module, name, None)
    if factory is None or not callable(factory):
        public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        close = difflib.get_close_matches(name, public, n=3)
        raise ArchError(
            f"--arch {spec}: {prefix} has no factory {name!r}"
            + (f"; did you mean {', '.join(close)}?" if close else ""),
            "name a function or class defined in that module",
        )
    return factory, f"{prefix}:{name}"


def default_preset_for(spec: str | None) -> str | None:
    """The preprocessing preset an architecture expects, if it says so.

    torchvision/timm models expect ``imagenet``; a factory's module may define ``PREPROCESS``.
    """
    if not spec:
        return None
    spec = canonical_arch(spec)
    prefix, sep, _ = spec.rpartition(":")
    if not sep:
        return None
    if prefix in ("torchvision", "timm"):
        return "imagenet"
    family_preset = preset_for_class(prefix)  # a pickled detector's class path (compress.detection.family)
    if family_preset is not None:
        return family_preset
    try:
        module = _import_file(prefix) if _looks_like_path(prefix) else _import_module(prefix)
    except ArchError:
        return None
    preset = getattr(module, "PREPROCESS", None)
    return preset if isinstance(preset, str) else None


def _require_listed(hub: str, name: str, available: list[str], hint: str) -> None:
    """ArchError naming the closest models when ``hub`` (torchvision, timm) has no model ``name``."""
    if name not in available:
        close = difflib.get_close_matches(name, available, n=3)
        raise ArchError(f"--arch {hub}:{name}: {hub} has no model {name!r}"
                        + (f"; did you mean {', '.join(close)}?" if close else ""), hint)


def _torchvision_factory(name: str) -> Callable[..., nn.Module]:
    import torchvision.models as tvm

    _require_listed("torchvision", name, sorted(tvm.list_models()), "see torchvision.models.list_models()")

    def build(**kwargs: Any) -> nn.Module:
        kwargs.setdefault("weights", None)
        return tvm.get_model(name, **kwargs)

    return build


def _timm_factory(name: str) -> Callable[..., nn.Module]:
    try:
        import timm  # type: ignore[import-not-found]
    except ImportError as err:
        raise ArchError(
            f"--arch timm:{name} needs the timm package, which is not installed",
            "pip install timm",
        ) from err
    _require_listed("timm", name, timm.list_models(), "see timm.list_models()")

    def build(**kwargs: Any) -> nn.Module:
        kwargs.setdefault("pretrained", False)
        return timm.create_model(name, **kwargs)

    return build


def _looks_like_path(prefix: str) -> bool:
    return prefix.endswith(".py") or "/" in prefix or "\\" in prefix


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        missing = err.name or name
        if missing != name and not name.startswith(missing + "."):
            raise ArchError(
                f"--arch {name}: importing it failed, it needs module {missing!r}",
                f"install {missing.split('.')[0]}",
            ) from err
        parent = name.rpartition(".")[0]
        candidates = list(ALIASES.values())
        if parent:
            try:
                import pkgutil

                pkg = importlib.import_module(parent)
                candidates += [f"{parent}.{m.name}" for m in pkgutil.iter_modules(getattr(pkg, "__path__", []))]
            except Exception:  # noqa: BLE001 - suggestions only
                pass
        close = difflib.get_close_matches(name, [c.split(":")[0] for c in candidates], n=3)
        raise ArchError(
            f"--arch: no module named {name!r}" + (f"; did you mean {', '.join(dict.fromkeys(close))}?" if close else ""),
            "give an importable module, or a file as path/to/file.py:factory",
        ) from err
    except Exception as err:  # noqa: BLE001 - user module may raise anything on import
        raise ArchError(
            f"--arch: importing module {name!r} raised {type(err).__name__}: {one_line(err, 200)}",
            "fix the module or name another one",
        ) from err


def _import_file(path_text: str) -> ModuleType:
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise ArchError(f"--arch: file {path_text} does not exist", "give path/to/file.py:factory")
    mod_name = "compress_user_arch_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ArchError(f"--arch: cannot import {path_text} as Python", "give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # so pickling/dataclasses inside it work
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - user file may raise anything
        sys.modules.pop(mod_name, None)
        raise ArchError(
            f"--arch: importing {path_text} raised {type(err).__name__}: {one_line(err, 200)}",
            "fix the file or name another one",
        ) from err
    return module


def _fmt_kwargs(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


__all__ = [
    "ALIASES",
    "canonical_arch",
    "default_preset_for",
    "is_trusted_arch",
    "parse_arch_kwargs",
    "resolve_arch",
    "resolve_factory",
]
