"""``compress sweep``: one row per pruning ratio — the table a user needs to pick a ratio."""

from __future__ import annotations

from pathlib import Path

import click

from compress.cli.options import json_option, load_kwargs, model_options, preprocess_options


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
@click.option("--importance", default="taylor-sq", show_default=True)
@click.option("--batch", "batch", type=int, default=1, show_default=True, help="Batch size the latency is measured at.")
@click.option("--backend", type=click.Choice(["onnxruntime", "torch"]), default="onnxruntime", show_default=True)
@click.option("--round-to", type=int, default=8, show_default=True)
@click.option("--device", default="auto", show_default=True,
              help="Where importance, recovery and the torch backend run: auto (the GPU when there is one), cpu "
                   "or cuda[:N].")
@click.option("--overwrite", is_flag=True,
              help="Reuse an existing output folder: only an earlier sweep's (it holds sweep.json) or an empty one.")
@model_options
@preprocess_options
@json_option
def sweep(checkpoint, calib, ratios, out, eval_dir, recover, recover_epochs, importance, batch, backend, round_to,
          device, overwrite, as_json, **model_params):
    """Prune CHECKPOINT at several ratios and measure accuracy and latency of each."""
    from compress.checks import check_device_name
    from compress.outputs import SWEEP_RECORD, check_output, input_paths

    check_device_name(device)
    root = check_output(Path(out) if out else Path(checkpoint).with_suffix(".sweep"), overwrite=overwrite,
                        markers=(SWEEP_RECORD,),
                        inputs=input_paths(checkpoint=checkpoint, calib=calib, eval=eval_dir,
                                           arch=model_params.get("arch")))
    from compress.cli import output
    from compress.devices import resolve_device
    from compress.importance import ImportanceConfig
    from compress.pipeline import PruneConfig
    from compress.plan import PrunePolicy
    from compress.recover import DistillConfig
    from compress.sweep import run_sweep

    device = str(resolve_device(device))
    base = PruneConfig(checkpoint=checkpoint, calib=calib, policy=PrunePolicy(ratio=ratios[0], round_to=round_to),
                       load=load_kwargs(model_params), importance=ImportanceConfig(name=importance, device=device),
                       recover=recover, distill=DistillConfig(epochs=recover_epochs), eval_dir=eval_dir,
                       overwrite=True, device=device)
    result = run_sweep(base, ratios, root, backend=backend, batch=batch, overwrite=overwrite, reporter=output.TERMINAL)
    rows = result.rows
    task = result.task
    if as_json:
        output.emit_json({"task": task.name, "metric": task.metric, "rows": rows, "report": str(result.report)})
        return
    output.table(f"sweep ({backend}, batch {batch})",
                 ["ratio", "MACs", "params", "p50 ms", "speed-up", task.metric_label, task.agreement_column],
                 [(r["ratio"], r["macs"], r["params"], r["latency_ms"], r["speedup"], output.pct(r["top1"]), output.pct(r["agreement"]))
                  for r in rows])
    output.info(f"wrote {result.plot} and one pruned model per ratio")
