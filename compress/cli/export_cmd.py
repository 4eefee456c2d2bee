"""``compress export``: the formats of the runtime plugins (``export.runtimes``: ONNX verified, INT8 ONNX,
engines, IR, programs..., each verified) from a compress folder or a checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from compress.artifacts import EXPORT, FORMATS
from compress.cli.options import comma_choice, json_option, load_kwargs, model_options, preprocess_options
from compress.export.quantize import METHODS, TARGET_HELP, TARGETS
from compress.export.runtimes import calibrated_formats, runtimes

FORMAT_HELP = ", ".join(", ".join(rt.formats) + (f" ({rt.hint})" if rt.hint else "") for rt in runtimes() if rt.formats)



@click.command()
@click.argument("model_path", metavar="OUT_OR_CHECKPOINT", type=click.Path(exists=True))
@click.option("--format", "formats", callback=comma_choice(FORMATS), default="onnx,int8", show_default=True,
              help=f"Comma-separated: {FORMAT_HELP}.")
@click.option("--calib", type=click.Path(exists=True, file_okay=False), default=None,
              help="Unlabeled images for verification and INT8 calibration (default: the folder prune used).")
@click.option("-o", "--out", type=click.Path(file_okay=False), default=None,
              help="Where to write (default: the compress folder itself, or CHECKPOINT.export/).")
@click.option("--int8-method", type=click.Choice(METHODS), default="minmax", show_default=True)
@click.option("--target", type=click.Choice(TARGETS), default="cpu", show_default=True,
              help=TARGET_HELP)
@model_options
@preprocess_options
@json_option
def export(model_path, formats, calib, out, int8_method, target, as_json, **model_params):
    """Export a pruned model (a `compress prune` folder) or a plain checkpoint (with --arch)."""
    from compress.artifacts.outputs import RECORD, check_output, input_paths

    saved = (Path(model_path) / RECORD).is_file()
    folder = check_output(Path(out) if out else (Path(model_path) if saved else Path(model_path).with_suffix(".export")),
                          replaces=False, markers=(RECORD, EXPORT),
                          inputs=input_paths(checkpoint=None if saved else model_path, calib=calib,
                                             arch=model_params.get("arch")))
    source = owned_output(folder, model_path)  # before loading: refusing costs nothing
    from compress.util.atomic import writing
    from compress.cli import output
    from compress.run.deploy import export_formats
    from compress.errors import UsageError
    from compress.models.loading import load_model

    from compress.run.deploy import require_runtimes

    require_runtimes(formats)  # a missing extra: one line, exit 5, before loading anything
    loaded = load_model(model_path, on_note=output.info, **load_kwargs(model_params))
    if calib is None:
        calib = loaded.recorded_calib
    images = _images(calib, loaded)
    if images is None:
        if set(calibrated_formats()) & set(formats):
            raise UsageError("INT8 calibration needs images", "pass --calib DIR (a folder of unlabeled images)")
        output.warn("no --calib: verifying the ONNX export on random inputs")
        images = torch_randn(loaded)
    from compress.artifacts.outputs import staged_files

    from compress.errors import CompressError

    stage = None
    try:
        with writing(folder / EXPORT), staged_files(folder, last=EXPORT) as stage:  # all files or none, Ctrl-C too
            record = export_formats(loaded.model, stage, formats, images, int8_method=int8_method, target=target,
                                    say_info=output.info, say_warn=output.warn,
                                    round_to=loaded.recorded_round_to, source=source)
    except CompressError as err:  # name the output, not the temporary folder it was built in
        if stage is not None:
            err.message = err.message.replace(str(stage), str(folder))
        raise
    if as_json:
        output.emit_json({"out": str(folder), **record.to_json()})
    else:
        output.info(f"wrote {folder}/export.json")


def owned_output(folder: Path, model_path: str) -> dict | None:
    """The weights digest the export records; refuse (exit 2) a ``folder`` that holds another model: another
    run's ``compress.json``, or an ``export.json`` recording other weights (a bench there would time that
    folder's figures with this model's files)."""
    import json
    import os

    from compress.artifacts.outputs import RECORD
    from compress.artifacts.saved import source_of
    from compress.errors import UsageError

    source = source_of(model_path)
    if not folder.is_dir() or os.path.realpath(folder) == os.path.realpath(model_path):
        return source
    theirs = source_of(folder) if (folder / RECORD).is_file() else None
    if theirs is None and (folder / EXPORT).is_file():
        try:
            theirs = json.loads((folder / EXPORT).read_text()).get("source")
        except (OSError, ValueError, AttributeError):
            theirs = {"sha256": "unreadable"}
    if (folder / RECORD).is_file() and theirs is None:
        theirs = {"sha256": "none"}
    if theirs and (source is None or theirs.get("sha256") != source["sha256"]):
        what = "another run's folder (its compress.json is another model)" if (folder / RECORD).is_file() else \
            "the export of another model (its export.json records other weights)"
        raise UsageError(f"output {folder} is {what}: exporting {model_path} there would mix two models' files",
                         "choose a new -o for this model")
    return source


PRELOAD_BYTES = 2**31  # the calibration images held in memory at once


def _images(calib, loaded):
    """Up to CALIBRATION_IMAGES images of ``calib``, as many as fit in PRELOAD_BYTES (saying so when fewer)."""
    if not calib or not Path(calib).is_dir():
        return None
    from compress.calibration import unlabelled_tensor
    from compress.cli import output
    from compress.run.deploy import CALIBRATION_IMAGES

    images, found = unlabelled_tensor(calib, loaded.preprocess(), max_images=CALIBRATION_IMAGES, max_bytes=PRELOAD_BYTES)
    if len(images) < found:
        output.warn(f"calibration: {len(images)} of {found} images of {calib} fit in "
                    f"{PRELOAD_BYTES / 2**30:.1f} GiB at this input size; verifying and calibrating on those")
    return images


def torch_randn(loaded):
    import torch

    return torch.randn(64, *loaded.spec.input_size, generator=torch.Generator().manual_seed(0))
