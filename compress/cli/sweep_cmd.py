"""``compress sweep``: one row per pruning ratio — the table a user needs to pick a ratio."""

from __future__ import annotations

import dataclasses
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
@click.option("--overwrite", is_flag=True)
@model_options
@preprocess_options
@json_option
def sweep(checkpoint, calib, ratios, out, eval_dir, recover, recover_epochs, importance, batch, backend, round_to,
          device, overwrite, as_json, **model_params):
    """Prune CHECKPOINT at several ratios and measure accuracy and latency of each."""
    from compress.cli import output
    from compress.deploy import Side, benchmark
    from compress.devices import resolve_device
    from compress.distill import DistillConfig
    from compress.errors import UsageError
    from compress.importance import ImportanceConfig
    from compress.loading import load_model
    from compress.pipeline import PruneConfig, Reporter, run_prune
    from compress.plan import PrunePolicy
    from compress.export.report import sweep_plot
    from compress.tasks import task_named

    device = str(resolve_device(device))
    root = Path(out) if out else Path(checkpoint).with_suffix(".sweep")
    if root.exists() and not overwrite:
        raise UsageError(f"output folder {root} already exists", "pass --overwrite or choose another -o")
    root.mkdir(parents=True, exist_ok=True)
    load = load_kwargs(model_params)
    base = PruneConfig(checkpoint=checkpoint, calib=calib, policy=PrunePolicy(ratio=ratios[0], round_to=round_to),
                       load=load, importance=ImportanceConfig(name=importance, device=device), recover=recover,
                       distill=DistillConfig(epochs=recover_epochs), eval_dir=eval_dir, overwrite=True, device=device)
    results = []
    for ratio in ratios:
        output.info(f"sweep: ratio {ratio}")
        config = dataclasses.replace(base, out=str(root / f"ratio-{ratio:g}"),
                                     policy=dataclasses.replace(base.policy, ratio=ratio))
        results.append((ratio, run_prune(config, Reporter())))
    task = task_named(results[0][1].summary)
    original = load_model(checkpoint, **load)
    sides = [Side("original", original.model, "", sizes={"checkpoint": original.size_bytes})]
    sides += [Side(f"ratio-{r:g}", res.model, str(res.out)) for r, res in results]
    report = benchmark(sides, root, input_shape=tuple(original.spec.input_size), backends=(backend,),
                       batches=(batch,), measure_memory=False, show=False, device=device,
                       task=task.labels())
    rows = _rows(report, results, backend, batch)
    sweep_plot(rows, root / "sweep.png", title=f"{Path(checkpoint).name}: pruning sweep",
               labels=(task.metric_label, task.agreement_column))
    if as_json:
        output.emit_json({"task": task.name, "metric": task.metric, "rows": rows, "report": str(root / "report.json")})
        return
    output.table(f"sweep ({backend}, batch {batch})",
                 ["ratio", "MACs", "params", "p50 ms", "speed-up", task.metric_label, task.agreement_column],
                 [(r["ratio"], r["macs"], r["params"], r["latency_ms"], r["speedup"], _pct(r["top1"]), _pct(r["agreement"]))
                  for r in rows])
    output.info(f"wrote {root}/sweep.png and one pruned model per ratio")


def _rows(report, results, backend, batch) -> list[dict]:
    from compress.pipeline import written_figures
    from compress.tasks import metric_before

    p50 = {row["model"]: row["latency_ms"]["p50"] for row in report["rows"]
           if row["backend"] == backend and row["batch"] == batch and row["precision"] == "fp32"}
    base = report["models"][0]
    rows = [{"ratio": 0.0, "macs": base["macs"], "params": base["params"], "latency_ms": p50.get("original"),
             "speedup": 1.0, "top1": metric_before(results[0][1].summary), "agreement": 1.0}]
    for ratio, res in results:
        s, name = res.summary, f"ratio-{ratio:g}"
        top1, agreement = written_figures(s)
        rows.append({"ratio": ratio, "macs": s["macs_after"], "params": s["params_after"], "latency_ms": p50.get(name),
                     "speedup": round(p50["original"] / p50[name], 3) if p50.get(name) else None,
                     "top1": top1, "agreement": agreement})
    return rows


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"
