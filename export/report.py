"""Render a benchmark report (``export.bench.run_bench``): terminal tables, report.json/.md/.png.

Ratios read as sentences: ``2.10x faster`` (baseline p50 / model p50), ``-48 % memory`` (peak RSS
change), ``-52 % size``; the MAC ratio stands beside the measured speed-up as its prediction.
The accuracy columns name the task's metric (``report["task"]``, from ``compress.tasks``): top-1 and
agreement for a classifier, mIoU and mIoU against the original for a segmenter.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from compress.export.records import LatencyRecord
from compress.export.runtimes import runtimes, safe_get
from compress.export.plotting import pyplot as _pyplot, save as _save, sweep_plot  # noqa: F401 (sweep_plot: re-exported)
from compress.util.atomic import write_text


# ---------------------------------------------------------------- formatting
def fmt_speedup(s: float | None) -> str:
    if s is None or not math.isfinite(s) or s <= 0:
        return "-"
    return f"{s:.2f}x faster" if s >= 1 else f"{1 / s:.2f}x slower"


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def fmt_change(c: float | None, what: str) -> str:
    if c is None:
        return "-"
    pct = round(c * 100)
    sign = "+" if pct > 0 else ("-" if pct < 0 else "±")
    return f"{sign}{abs(pct)} % {what}"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def fmt_ms(x: float | None) -> str:
    return "-" if x is None else (f"{x:.3f}" if x < 1 else f"{x:.2f}")


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f} %"


def backend_label(row: dict) -> str:
    """``torch`` on the CPU, ``torch cuda:0`` on a GPU: the device shows where it is not the obvious one
    (``Runtime.label_device``)."""
    device = row.get("device")
    runtime = safe_get(row["backend"])
    shown = runtime is not None and runtime.label_device and device and device != "cpu"
    return f"{row['backend']} {device}" if shown else row["backend"]


def _gpu_memory(report: dict) -> bool:
    return any((r.get("memory") or {}).get("gpu_peak_bytes") is not None for r in report["rows"])


def latency_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    gpu = _gpu_memory(report)
    cols = ["model", "backend", "precision", "batch", "p50 ms", "p90 ms", "images/s", "peak RSS", "model RSS",
            *(["GPU memory"] if gpu else []), "size"]
    rows = []
    for r in report["rows"]:
        mem = r.get("memory") or {}
        rows.append([r["model"], backend_label(r), r["precision"], str(r["batch"]), fmt_ms(r["latency_ms"]["p50"]),
                     fmt_ms(r["latency_ms"]["p90"]), f"{r['throughput']:.0f}", fmt_bytes(mem.get("peak_rss_bytes")),
                     fmt_bytes(mem.get("model_rss_bytes")),
                     *([fmt_bytes(mem.get("gpu_peak_bytes"))] if gpu else []), fmt_bytes(r.get("size_bytes"))])
    return cols, rows


def comparison_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    gpu = _gpu_memory(report)
    agree = any(r.get("agreement") is not None for r in report["rows"])
    cols = ["model", "backend", "precision", "batch", "measured", "MAC ratio (predicted)",
            *(["top-1 agreement"] if agree else []), "peak memory", "model memory",
            *(["GPU memory"] if gpu else []), "size"]
    by_key = {(r["model"], r["backend"], r["precision"], r["batch"]): r for r in report["rows"]}
    rows = []
    for c in report["comparisons"]:
        row = by_key.get((c["model"], c["backend"], c["precision"], c["batch"]), c)
        rows.append([c["model"], backend_label(row), c["precision"], str(c["batch"]), fmt_speedup(c["speedup"]),
                     fmt_ratio(c["mac_ratio"]), *([fmt_pct(row.get("agreement"))] if agree else []),
                     fmt_change(c["memory_change"], "memory"),
                     fmt_change(c["model_memory_change"], "memory"),
                     *([fmt_change(c.get("gpu_memory_change"), "GPU memory")] if gpu else []),
                     fmt_change(c["size_change"], "size")])
    return cols, rows


def metric_names(report: dict) -> tuple[str, str]:
    """(the labelled metric's name, the label-free agreement's name) of the report's task."""
    task = report.get("task") or {}
    return task.get("metric", "top-1"), task.get("agreement", "agreement")


def model_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    metric, agreement = metric_names(report)
    cols = ["model", "params", "MACs", metric, agreement, f"INT8 {metric}", f"INT8 {agreement}"]
    rows = []
    for m in report["models"]:
        rows.append([m["name"], _human(m.get("params")), _human(m.get("macs")), fmt_pct(m.get("top1")),
                     fmt_pct(m.get("agreement")), fmt_pct(m.get("int8_top1")), fmt_pct(m.get("int8_agreement"))])
    return cols, rows


VERDICT_RULE = ("beats means: its {metric} is at least the alternative's, and its MACs and its fp32 latency "
                "(geometric mean of the p50 ratios over every backend and batch both ran) are at most the "
                "alternative's")


def verdict(report: dict, model: str, against: str) -> dict[str, Any]:
    """Whether ``model`` beats ``against`` (the off-the-shelf alternative) at equal or lower cost (``VERDICT_RULE``).

    ``metric_diff`` in points (None without a labelled metric), ``mac_ratio`` and ``latency_ratio`` as
    model / alternative (below 1: cheaper), ``latency_ratios`` per fp32 (backend, batch), ``beats``: True,
    False, or None when the metric is missing; ``line``: the sentence the report prints."""
    metric = metric_names(report)[0]
    models = {m["name"]: m for m in report["models"]}
    mine, alt = models[model], models[against]
    diff = (mine["top1"] - alt["top1"]) * 100 if mine.get("top1") is not None and alt.get("top1") is not None else None
    macs = mine["macs"] / alt["macs"] if mine.get("macs") and alt.get("macs") else None
    p50 = {(r["model"], r["backend"], r["batch"]): r["latency_ms"]["p50"] for r in report["rows"]
           if r["precision"] == "fp32"}
    ratios = {f"{b} batch {n}": p50[(model, b, n)] / p50[(against, b, n)] for (who, b, n) in p50
              if who == against and (model, b, n) in p50 and p50[(against, b, n)]}
    latency = math.exp(sum(math.log(r) for r in ratios.values()) / len(ratios)) if ratios else None
    cheaper = (macs is None or macs <= 1.0) and (latency is None or latency <= 1.0)
    beats = None if diff is None else bool(diff >= 0 and cheaper)
    cost = ", ".join(part for part in (
        f"{fmt_ratio(macs)} its MACs" if macs is not None else "",
        f"{fmt_ratio(latency)} its latency" + (f" ({fmt_ratio(min(ratios.values()))}-{fmt_ratio(max(ratios.values()))}"
                                               f" over {len(ratios)} backend/batch rows)" if len(ratios) > 1 else "")
        if latency is not None else "") if part)
    if diff is None:
        line = f"{model} vs {against}: no {metric} to judge (give --eval); {model} runs at {cost}"
    else:
        word = "beats" if beats else "does not beat"
        line = f"{model} {word} {against}: {diff:+.2f} {metric} at {cost}"
    return {"model": model, "against": against, "metric": metric, "metric_diff": diff, "mac_ratio": macs,
            "latency_ratio": latency, "latency_ratios": ratios, "beats": beats, "line": line,
            "rule": VERDICT_RULE.format(metric=metric)}


def environment_line(report: dict) -> str:
    e = report["environment"]
    gpu = e.get("gpu") or "no GPU"
    versions = ", ".join(f"{label} {e[key]}" for runtime in runtimes() for key, label in runtime.env_labels
                         if e.get(key))
    load = f"; load average {e['load_average'][0]:.1f}" if e.get("load_average") else ""
    return f"{e['cpu']} ({e['cpu_count']} cores, {_threads(e['threads'])}), {gpu}; {versions}{load}"


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


# ---------------------------------------------------------------- terminal
def render_table(report: dict, console=None) -> None:
    """Print the report's tables with rich (stdout unless ``console`` says otherwise)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # a log (not a terminal) gets the width the widest table needs, so cells do not wrap into two lines
    console = console or Console(file=sys.stdout, width=max(120, Console().width) if sys.stdout.isatty() else 180)
    console.print(f"[dim]{escape(environment_line(report))}[/dim]")
    base = report["settings"]["baseline"]
    for title, (cols, rows) in (("Models", model_rows(report)), ("Latency, throughput, memory", latency_rows(report)),
                                (f"Compared with {base} (fp32, same backend and batch)", comparison_rows(report))):
        if not rows:
            continue
        table = Table(title=escape(title), title_justify="left")
        for i, col in enumerate(cols):
            table.add_column(escape(col), justify="left" if i < 3 else "right")
        for row in rows:
            table.add_row(*[escape(cell) for cell in row])
        console.print(table)
    if report.get("verdict"):
        console.print(f"[bold]{escape(report['verdict']['line'])}[/bold]")
        console.print(f"[dim]({escape(report['verdict']['rule'])})[/dim]")
    for sk in report.get("skipped", []):
        who = f" for {sk['model']}" if sk.get("model") else ""
        line = f"skipped {sk['backend']}{who}: {sk['reason']}"
        console.print(f"[yellow]{escape(line)}[/yellow]")
    for note in report.get("notes", []):
        console.print(f"[yellow]{escape('note: ' + note)}[/yellow]")


# ---------------------------------------------------------------- files
def write_report(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.json`` (every raw figure), ``report.md`` and ``report.png`` under ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "png": out_dir / "report.png"}
    write_text(paths["json"], json.dumps(report, indent=2, default=_jsonable) + "\n")
    write_text(paths["md"], markdown(report))
    plot_report(report, paths["png"])
    return paths


def markdown(report: dict) -> str:
    s = report["settings"]
    lines = ["# Benchmark report", "", f"Measured on {environment_line(report)}.", "",
             f"Latency: p50 of {s['iters']}+ interleaved runs after {s['warmup']} warm-up runs per model; "
             f"throughput = batch / p50. Memory: peak RSS of a fresh process per row"
             f"{' (GPU memory: peak allocated by torch on CUDA)' if _gpu_memory(report) else ''}. "
             f"Baseline: **{s['baseline']}**.", ""]
    for title, (cols, rows) in (("Models", model_rows(report)), ("Latency, throughput, memory", latency_rows(report)),
                                (f"Compared with {s['baseline']}", comparison_rows(report))):
        if not rows:
            continue
        lines += [f"## {title}", "", "| " + " | ".join(cols) + " |",
                  "|" + "|".join("---" if i < 3 else "---:" for i in range(len(cols))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    if report.get("verdict"):
        v = report["verdict"]
        lines += ["## Against the off-the-shelf alternative", "", f"**{v['line']}**", "", f"({v['rule']}.)", ""]
    lines += latency_target_lines(report.get("latency_target"))
    for sk in report.get("skipped", []):
        who = f" for {sk['model']}" if sk.get("model") else ""
        lines.append(f"- skipped {sk['backend']}{who}: {sk['reason']}")
    for note in report.get("notes", []):
        lines.append(f"- note: {note}")
    return "\n".join(lines).rstrip() + "\n"


def latency_target_lines(data: dict | None) -> list[str]:
    """The prune-time latency target (``compress prune --target-latency/--target-speedup``)."""
    if not data:
        return []
    t = LatencyRecord.from_json(data)
    err = t.prediction_error
    rows = [("target", f"{t.target_ms:.3f} ms"), ("predicted", f"{t.predicted_ms:.3f} ms"),
            ("measured (interleaved with the original)", f"{t.measured_ms:.3f} ms vs {t.original_ms:.3f} ms, "
                                                          f"{t.speedup:.2f}x"),
            ("importance kept", f"{t.importance_kept:.1%}"),
            ("latency model error, held out", f"mean {err.mean:.1%}, max {err.max:.1%} over {err.configs}")]
    return [f"## Latency target ({t.backend}, batch {t.batch}, {t.threads} threads, at prune time)", "",
            "| | |", "|---|---:|", *[f"| {k} | {v} |" for k, v in rows], ""]


def plot_report(report: dict, path: str | Path) -> Path:
    """Grouped bars: p50 latency per backend/precision for each batch, and accuracy/agreement."""
    plt = _pyplot()
    batches = report["settings"]["batches"]
    models = [m["name"] for m in report["models"]]
    acc = _accuracy_series(report)
    panels = len(batches) + (1 if acc else 0)
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.6), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, batch in zip(axes[0], batches):
        rows = [r for r in report["rows"] if r["batch"] == batch]
        groups = list(dict.fromkeys(f"{backend_label(r)}\n{r['precision']}" for r in rows))
        width = 0.8 / max(1, len(models))
        for i, name in enumerate(models):
            xs, ys = [], []
            for g, group in enumerate(groups):
                hit = [r for r in rows if r["model"] == name and f"{backend_label(r)}\n{r['precision']}" == group]
                if hit:
                    xs.append(g + (i - (len(models) - 1) / 2) * width)
                    ys.append(hit[0]["latency_ms"]["p50"])
            bars = ax.bar(xs, ys, width, label=name, color=colors[i % len(colors)])
            ax.bar_label(bars, labels=[fmt_ms(y) for y in ys], fontsize=7, padding=2)
        ax.set_xticks(range(len(groups)), groups, fontsize=8)
        ax.set_ylabel("latency, p50 (ms) - lower is better")
        ax.set_title(f"batch {batch}")
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=max(1, len(models)), fontsize=9, frameon=False)
    if acc:
        ax = axes[0][-1]
        labels = list(acc)
        width = 0.8 / max(1, len(models))
        for i, name in enumerate(models):
            xs = [k + (i - (len(models) - 1) / 2) * width for k, lab in enumerate(labels) if acc[lab].get(name) is not None]
            ys = [acc[lab][name] * 100 for lab in labels if acc[lab].get(name) is not None]
            bars = ax.bar(xs, ys, width, label=name, color=colors[i % len(colors)])
            ax.bar_label(bars, labels=[f"{y:.1f}" for y in ys], fontsize=7, padding=2)
        values = [v * 100 for d in acc.values() for v in d.values() if v is not None]
        ax.set_ylim(max(0.0, min(values) - 10), 100 + 4)
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_ylabel("% - higher is better")
        ax.set_title(f"{metric_names(report)[0]} and {metric_names(report)[1]}")
        ax.grid(axis="y", alpha=0.3)
    title = f"{' vs '.join(models)} - {report['environment'].get('cpu', '')}, {_threads(report['settings']['threads'])}"
    if report.get("verdict"):
        title += "\n" + report["verdict"]["line"]
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    _save(fig, path)
    return Path(path)


def _threads(n) -> str:
    return f"{n} thread" if n == 1 else f"{n} threads"


def _accuracy_series(report: dict) -> dict[str, dict[str, float | None]]:
    metric, agreement = metric_names(report)
    series = {f"{metric}\nFP32": "top1", f"{metric}\nINT8": "int8_top1", f"{agreement}\nFP32": "agreement",
              f"{agreement}\nINT8": "int8_agreement"}
    out = {}
    for label, key in series.items():
        values = {m["name"]: m.get(key) for m in report["models"]}
        if any(v is not None for v in values.values()):
            out[label] = values
    return out


def _jsonable(value: Any):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__fspath__"):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
