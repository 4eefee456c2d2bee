"""``compress bench``: measured latency, memory, size and accuracy, original vs compressed."""

from __future__ import annotations

from pathlib import Path

import click

from compress.export.runtimes import NAMES, get, optional, runtimes
from compress.cli.options import (baseline_load, baseline_options, comma_choice, json_option, load_kwargs, model_options,
                                  preprocess_options)


def _ints(ctx, param, value: str) -> tuple[int, ...]:
    try:
        items = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not items or min(items) < 1:
        raise click.BadParameter("batch sizes must be positive")
    return items


@click.command()
@click.argument("first", metavar="OUT_OR_A", type=click.Path(exists=True))
@click.argument("second", metavar="[B]", required=False, type=click.Path(exists=True))
@click.option("--backend", "backends", callback=comma_choice(NAMES),
              default="torch,onnxruntime", show_default=True,
              help="Comma-separated runtimes: " + ", ".join(rt.name + (f" ({rt.bench_hint})" if rt.bench_hint else "")
                                                           for rt in runtimes()) + ".")
@click.option("--batch", "batches", callback=_ints, default="1,32", show_default=True)
@click.option("-o", "--out", type=click.Path(file_okay=False), default=None,
              help="Folder for report.json/md/png (default: OUT, or ./bench-report for two models).")
@click.option("--eval", "eval_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Labelled folder: report top-1 accuracy of each model (and its INT8 ONNX).")
@click.option("--calib", type=click.Path(exists=True, file_okay=False), default=None,
              help="Unlabeled images to measure top-1 agreement with the original (default: prune's folder).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch and onnxruntime, at least 1 (default: all cores).")
@click.option("--iters", type=click.IntRange(min=1), default=50, show_default=True, help="Timed runs, at least 1.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True)
@click.option("--min-seconds", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Keep timing each model at least this long (stabilises fast batch-1 runs).")
@click.option("--overwrite", is_flag=True, default=False,
              help="Replace an existing -o folder, only when it is an earlier bench report or empty.")
@click.option("--memory/--no-memory", default=True, show_default=True, help="Peak RSS of a fresh process per row.")
@click.option("--device", default="auto", show_default=True,
              help="Where the torch backend runs: auto (the GPU when there is one), cpu or cuda[:N].")
@baseline_options
@model_options
@preprocess_options
@json_option
def bench(first, second, backends, batches, out, eval_dir, calib, threads, iters, warmup, min_seconds, memory, device,
          overwrite, baseline, baseline_arch, baseline_arch_kwargs, as_json, **model_params):
    """Compare OUT (a `compress prune` folder) with the original it came from, or A with B, and with --baseline."""
    from compress.checks import check_device_name
    from compress.artifacts.names import REPORT
    from compress.artifacts.outputs import RECORD, check_output, rolled_back

    check_device_name(device)
    models = {"A": first, "B": second} if second else {"OUT": first}
    if not second and not (Path(first) / RECORD).is_file():
        from compress.errors import UsageError

        raise UsageError(f"{first} is not a compress output folder", "give two models: compress bench A B")
    default = Path("bench-report") if second else Path(first)
    target = Path(out) if out else default
    # into a compress folder (OUT itself by default) the report is added; any other folder is the report's own,
    # replaced whole only with --overwrite, as prune replaces its output
    adds = (target / RECORD).is_file() or not out
    check_output(target, replaces=not adds, overwrite=overwrite, markers=(REPORT,) if not adds else (RECORD, REPORT),
                 inputs={**{k: v for k, v in models.items() if v and not (Path(v) / RECORD).is_file()},
                         "--eval": eval_dir, "--calib": calib, "--baseline": baseline})
    from compress.util.atomic import writing
    from compress.run.bench_sides import load_sides
    from compress.cli import output
    from compress.run.deploy import benchmark
    from compress.devices import resolve_device

    for name in [n for n in optional() if n in backends]:
        get(name).require()  # asked for by name: one line naming the extra, exit 5
    device = str(resolve_device(device))
    base = baseline_load(model_params, baseline, baseline_arch, baseline_arch_kwargs)
    load = load_kwargs(model_params)
    if base and not second:  # OUT records its own architecture: --arch/--arch-kwargs were the baseline's
        load = {**load, "arch": None, "arch_kwargs": {}}
    replace = target.exists() and not adds  # --overwrite of an earlier report: built apart, then swapped in
    with writing(target / REPORT), (_replaced(target) if replace else rolled_back(target)) as where:
        sides, shape, out_dir, task = load_sides(first, second, str(where), eval_dir, calib, load, output.info,
                                                 baseline=base)
        report = benchmark(sides, Path(out_dir), input_shape=shape, backends=backends, batches=batches,
                           threads=threads, iters=iters, warmup=warmup, min_seconds=min_seconds,
                           measure_memory=memory, show=not as_json, device=device, task=task.labels(),
                           judge=(sides[1].name, sides[2].name) if base else None)
    if as_json:
        if sides[0].name != "original":
            report["note"] = "B was not pruned from A: the two are compared as unrelated models"
        output.emit_json(report)
    else:
        output.info(f"wrote {target}/report.json, report.md, report.png")


def _replaced(target: Path):
    from compress.util.atomic import atomic_dir

    return atomic_dir(target, overwrite=True)

