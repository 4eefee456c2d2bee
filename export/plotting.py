"""Matplotlib without a display, PNGs written atomically, and the sweep's trade-off plot (``compress sweep``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from compress.util.atomic import atomic_file


def sweep_plot(rows: Sequence[dict[str, Any]], path: str | Path, *, title: str | None = None,
               labels: tuple[str, str] = ("top-1 accuracy", "top-1 agreement"),
               baseline: dict[str, Any] | None = None) -> Path:
    """Accuracy/latency trade-off of ``compress sweep``.

    ``rows``: dicts with ``ratio`` (pruning ratio), ``macs``, ``latency_ms`` (or ``latency``) and
    ``top1`` and/or ``agreement`` (fractions; ``top1`` holds the task's labelled metric, named by
    ``labels``). Two panels: metric vs latency and vs MACs, each point labelled with its ratio.
    ``baseline``: an off-the-shelf alternative (``name`` and the same keys), drawn as a separate point.
    """
    plt = pyplot()
    if not rows:
        raise ValueError("no sweep rows to plot")
    rows = sorted(rows, key=lambda r: r.get("ratio", 0))
    metrics = [(k, lab) for k, lab in (("top1", labels[0]), ("agreement", labels[1]))
               if any(r.get(k) is not None for r in rows)]
    if not metrics:
        raise ValueError("sweep rows need 'top1' or 'agreement'")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), squeeze=False)
    xaxes = (("latency_ms", "latency, p50 (ms)"), ("macs", "MACs (millions)"))
    for ax, (xkey, xlabel) in zip(axes[0], xaxes):
        for key, label in metrics:
            pts = [(_x(r, xkey), r[key] * 100, r.get("ratio")) for r in rows
                   if r.get(key) is not None and _x(r, xkey) is not None]
            if not pts:
                continue
            xs, ys, ratios = zip(*pts)
            ax.plot(xs, ys, "o-", label=label)
            for x, y, ratio in pts:
                if ratio is not None:
                    ax.annotate(f"{ratio:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
            if baseline and baseline.get(key) is not None and _x(baseline, xkey) is not None:
                x, y = _x(baseline, xkey), baseline[key] * 100
                ax.plot([x], [y], "*", markersize=12, color=ax.lines[-1].get_color(), label=f"{label}, {baseline['name']}")
                ax.annotate(baseline["name"], (x, y), textcoords="offset points", xytext=(5, -10), fontsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("% - higher is better")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_title("accuracy vs latency (labels: pruning ratio)")
    axes[0][1].set_title("accuracy vs MACs")
    fig.suptitle(title or "Pruning sweep: accuracy / cost trade-off", fontsize=11)
    fig.tight_layout()
    save(fig, path)
    return Path(path)


def _x(row: dict, key: str):
    if key == "latency_ms":
        return row.get("latency_ms", row.get("latency"))
    v = row.get(key)
    return v / 1e6 if v is not None else None


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    try:
        with atomic_file(path, "wb") as handle:
            fig.savefig(handle, format="png", dpi=130)
    finally:
        plt.close(fig)
