"""One place that decides how results reach the user: a table for people, JSON for machines."""

from __future__ import annotations

import json
import math
import sys
from typing import Any, Iterable, Sequence

import click


EMITTED: list[bool] = []  # set once this process printed its JSON object (an error then adds none)


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout (and nothing else there)."""
    click.echo(json.dumps(obj, indent=2, default=_jsonable))
    EMITTED.append(True)


def emit_json_error(message: str, exit_code: int, hint: str | None = None) -> None:
    """With ``--json``: an error is one JSON object on stdout too, unless a result was printed."""
    if not EMITTED:
        emit_json({"error": message, "hint": hint, "exit_code": exit_code})


def _jsonable(value: Any):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__fspath__"):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, err: bool = False) -> None:
    """Render a readable table (rich) on stdout, or stderr with ``err=True``."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_lines=False)
    for i, col in enumerate(columns):
        t.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*[fmt(v) for v in row])
    Console(file=sys.stderr if err else sys.stdout, width=max(100, _terminal_width())).print(t)


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((120, 40)).columns


def info(message: str) -> None:
    """Progress and status lines go to stderr so stdout stays clean for --json."""
    click.echo(message, err=True)


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


class Terminal:
    """The pipeline's ``Reporter`` (``compress.run.pipeline.Reporter``) on a terminal."""

    info = staticmethod(info)
    warn = staticmethod(warn)


TERMINAL = Terminal()


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return human_int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4g}"
    return str(value)


def pct(v: float | None) -> str:
    """0.8135 -> '81.35 %'; None -> '-'."""
    return "-" if v is None else f"{100 * v:.2f} %"


def human_int(n: int) -> str:
    """1234567 -> '1.23 M'; small numbers unchanged."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


def human_bytes(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"
