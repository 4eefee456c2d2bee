"""Reusable Click options: which model to load, how its inputs are prepared, JSON output.

Commands stack the decorators and turn the parsed values into keyword arguments with
:func:`load_kwargs` (for :func:`compress.models.loading.load_model`) and :func:`preprocess_kwargs`
(for :func:`calibrate.preprocess.resolve_preprocess`).
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

PREPROCESS_KEYS = ("preset", "input_size", "mean", "std", "channel_order", "resize_kernel", "letterbox")


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


model_options = _stack(
    click.option("--arch", metavar="SPEC", default=None,
                 help="Architecture for a state_dict: torchvision:resnet18, timm:NAME, package.module:factory, "
                      "path/to/file.py:factory, or a shipped alias (cifar_resnet20 … cifar_resnet110, digits, segdigits, detdigits)."),
    click.option("--arch-kwargs", metavar="K=V,...", default=None,
                 help="Keyword arguments for the architecture factory, e.g. num_classes=100,width=0.5."),
    click.option("--trust", is_flag=True, default=False,
                 help="Allow checkpoints that hold pickled Python objects, and a compress folder's own "
                      "architecture code (loading them runs code)."),
    click.option("--follow-links", is_flag=True, default=False, expose_value=False, callback=lambda _c, _p, v: _links(v),
                 help="Read --calib/--eval images through symlinks that lead out of their folder (refused otherwise)."),
)


def _links(follow: bool) -> None:
    import os

    os.environ.pop("COMPRESS_FOLLOW_LINKS", None) if not follow else os.environ.update(COMPRESS_FOLLOW_LINKS="1")

preprocess_options = _stack(
    # calibrate.preprocess.PRESETS, written out (it imports torch; --help must not): tests/test_docs.py holds it
    click.option("--preset", type=click.Choice(["imagenet", "cifar", "scenes48", "yolo"], case_sensitive=False), default=None,
                 help="Input preprocessing preset (default: the architecture's own, else imagenet)."),
    click.option("--input-size", metavar="SIZE", default=None,
                 help="Model input size: 224, 224x224 or 3x224x224 (overrides the preset's)."),
    click.option("--mean", metavar="R,G,B", default=None, help="Normalisation mean per RGB channel."),
    click.option("--std", metavar="R,G,B", default=None, help="Normalisation std per RGB channel."),
    # the training pipeline's own pixels (issue 49): recorded in the spec, used wherever an image becomes a tensor
    click.option("--channel-order", type=click.Choice(["rgb", "bgr"]), default=None,
                 help="The model's input channel order: bgr for a model trained on OpenCV images (--mean/--std then "
                      "in B,G,R order). Default rgb."),
    click.option("--resize", "resize_kernel", type=click.Choice(["pil", "bilinear", "area"]), default=None,
                 help="Resize kernel: pil (PIL bilinear, antialiased; the default), or bilinear / area without "
                      "antialiasing, as OpenCV's cv2.resize INTER_LINEAR / INTER_AREA."),
    click.option("--letterbox/--stretch", "letterbox", default=None,
                 help="Reach the input size by fitting the image and padding with grey 114 (a YOLO-style letterbox), "
                      "or by stretching it (the default)."),
)

baseline_options = _stack(
    click.option("--baseline", type=click.Path(exists=True, dir_okay=False), default=None,
                 help="An off-the-shelf alternative (e.g. the next-smaller model) to bench as a row, with a line saying "
                      "whether the compressed model beats it at equal or lower cost."),
    click.option("--baseline-arch", metavar="SPEC", default=None, help="Architecture of --baseline (default: --arch)."),
    click.option("--baseline-arch-kwargs", metavar="K=V,...", default=None,
                 help="Keyword arguments of --baseline-arch (default: --arch-kwargs)."),
)


def baseline_load(params: dict[str, Any], baseline: str | None, arch: str | None,
                  arch_kwargs: str | None) -> tuple[str, dict[str, Any]] | None:
    """(--baseline, its ``load_model`` options: the model options, with --baseline-arch/--baseline-arch-kwargs),
    or None without --baseline."""
    from compress.models.arch import parse_arch_kwargs

    if not baseline:
        if arch or arch_kwargs:
            from compress.errors import UsageError

            raise UsageError("--baseline-arch/--baseline-arch-kwargs need --baseline", "name the baseline checkpoint")
        return None
    load = load_kwargs(params)
    if arch:
        load.update(arch=arch, arch_kwargs=parse_arch_kwargs(arch_kwargs))
    elif arch_kwargs:
        load.update(arch_kwargs=parse_arch_kwargs(arch_kwargs))
    return baseline, load


json_option = click.option("--json", "as_json", is_flag=True, default=False,
                           help="Print one JSON object on stdout instead of tables.")


def load_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """``load_model`` keyword arguments from parsed model + preprocessing options."""
    from compress.models.arch import parse_arch_kwargs

    out: dict[str, Any] = {
        "arch": params.get("arch"),
        "arch_kwargs": parse_arch_kwargs(params.get("arch_kwargs")),
        "trust": bool(params.get("trust", False)),
    }
    out.update(preprocess_kwargs(params))
    return out


def preprocess_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """``resolve_preprocess`` / ``load_model`` keyword arguments from parsed preprocessing options."""
    return {key: params.get(key) for key in PREPROCESS_KEYS}


__all__ = [
    "baseline_load",
    "baseline_options",
    "json_option",
    "load_kwargs",
    "model_options",
    "preprocess_kwargs",
    "preprocess_options",
]


def comma_choice(allowed: tuple[str, ...], *, required: bool = True) -> Callable:
    """A Click callback parsing ``a,b,c`` into a tuple of names from ``allowed``."""

    def parse(ctx, param, value: str | None) -> tuple[str, ...]:
        items = tuple(v.strip().lower() for v in (value or "").split(",") if v.strip())
        bad = [v for v in items if v not in allowed]
        if bad or (required and not items):
            raise click.BadParameter(f"unknown value(s) {', '.join(bad) or '(none)'}; choose from {', '.join(allowed)}")
        return items

    return parse
