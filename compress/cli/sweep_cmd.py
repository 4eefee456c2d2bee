"""``compress sweep``: one row per pruning ratio — the table a user needs to pick a ratio."""

from __future__ import annotations

from pathlib import Path

import click

from compress.cli.prune_cmd import IMPORTANCE_NAMES
from compress.cli.options import baseline_load, baseline_options, json_option, load_kwargs, model_options, preprocess_options


def _ratios(ctx, param, value: str) -> tuple[float, ...]:
    try:
        items = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated fractions, got {value!r}") from None
    if not items or not all(0 < r < 1 for r in items):
        raise click.BadParameter("ratios must lie strictly between 0 and 1")
    return tuple(sorted(set(items)))


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option("--calib", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--ratios", callback=_ratios, default="0.2,0.4,0.6", show_default=True)
@click.option("-o", "--out", type=click.Path(file_okay=False), default=None,
              help="Folder for one pruned model per ratio and the sweep report (default: CHECKPOINT.sweep).")
@click.option("--eval", "eval_dir", type=click.Path(exists=True, file_okay=False), default=None)
@click.option("--recover/--no-recover", default=True, show_default=True)
@click.option("--recover-epochs", type=float, default=None)
@click.option("--importance", type=click.Choice(IMPORTANCE_NAMES), default="taylor-sq", show_default=True)
@click.option("--batch", "batch", type=int, default=1, show_default=True, help="Batch size the latency is measured at.")
@click.option("--backend", type=click.Choice(["onnxruntime", "torch"]), default="onnxruntime", show_default=True)
@click.option("--round-to", type=int, default=8, show_default=True)
@click.option("--device", default="auto", show_default=True,
              help="Where importance, recovery and the torch backend run: auto (the GPU when there is one), cpu "
                   "or cuda[:N].")
@click.option("--overwrite", is_flag=True,
              help="Reuse an existing output folder: only an earlier sweep's (it holds sweep.json) or an empty one.")
@baseline_options
@model_options
@preprocess_options
@json_option
def sweep(checkpoint, calib, ratios, out, eval_dir, recover, recover_epochs, importance, batch, backend, round_to,
          device, overwrite, baseline, baseline_arch, baseline_arch_kwargs, as_json, **model_params):
    """Prune CHECKPOINT at several ratios and measure accuracy and latency of each."""
    from compress.checks import check_device_name
    from compress.artifacts import SWEEP_RECORD
    from compress.artifacts.outputs import check_output, input_paths

    check_device_name(device)
    root = check_output(Path(out) if out else Path(checkpoint).with_suffix(".sweep"), overwrite=overwrite,
                        markers=(SWEEP_RECORD,),
                        inputs=input_paths(checkpoint=checkpoint, calib=calib, eval=eval_dir,
                                           arch=model_params.get("arch")))
    from compress.api import sweep as run_sweep
    from compress.cli import output
    from compress.devices import resolve_device

    result = run_sweep(checkpoint, calib, ratios, out=str(root), importance=importance, recover=recover,
                       recover_epochs=recover_epochs, eval_dir=eval_dir, backend=backend, batch=batch,
                       round_to=round_to, device=str(resolve_device(device)), overwrite=overwrite,
                       reporter=output.TERMINAL,
                       baseline=baseline_load(model_params, baseline, baseline_arch, baseline_arch_kwargs),
                       **load_kwargs(model_params))
    rows = result.rows
    task = result.task
    if as_json:
        output.emit_json({"task": task.name, "metric": task.metric, "rows": rows, "report": str(result.report),
                          **({"baseline": result.baseline} if result.baseline else {})})
        return
    extra = [(name, key) for name, key in task.sweep_columns() if any(key in r for r in rows)]
    output.table(f"sweep ({backend}, batch {batch})",
                 ["ratio", "MACs", "params", "p50 ms", "speed-up", task.metric_label, task.agreement_column,
                  *(name for name, _ in extra)],
                 [(r["ratio"], r["macs"], r["params"], r["latency_ms"], r["speedup"], output.pct(r["top1"]), output.pct(r["agreement"]),
                   *(output.pct(r.get(key)) for _, key in extra)) for r in rows])
    if result.baseline:
        b = result.baseline
        output.info(f"baseline ({baseline}): MACs {b['macs']:,}, p50 {b['latency_ms'] or float('nan'):.3f} ms, "
                    f"{task.metric_label} {output.pct(b['top1'])}")
    output.info(f"wrote {result.plot} and one pruned model per ratio")
