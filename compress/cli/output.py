"""One place that decides how results reach the user: a table for people, JSON for machines."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
from typing import Any, Iterable, Iterator, Sequence, TextIO

import click


EMITTED: list[bool] = []  # set once this process printed its JSON object (an error then adds none)
_JSON_OUT: list[TextIO] = []  # the real stdout while json_stdout() holds it
QUIET_ENV = {"YOLO_VERBOSE": "False"}  # libraries' own switches for their banners (Ultralytics' first-run settings note)


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout (and nothing else there)."""
    click.echo(json.dumps(obj, indent=2, default=_jsonable), file=real_stdout())
    EMITTED.append(True)


def real_stdout() -> TextIO:
    """Where the JSON goes: the command's stdout, also while :func:`json_stdout` sends everything else to stderr."""
    return _JSON_OUT[-1] if _JSON_OUT else sys.stdout


def json_fd() -> int | None:
    """The real stdout's file descriptor while :func:`json_stdout` holds it (for a child process), else None."""
    return _fileno(_JSON_OUT[-1]) if _JSON_OUT and _JSON_OUT[-1] is not sys.stdout else None


@contextlib.contextmanager
def json_stdout() -> Iterator[None]:
    """While a ``--json`` command works, stdout holds nothing but its JSON: whatever else is written there (a
    library's first-run banner, a ``print``, C code writing to file descriptor 1, a child process) goes to
    stderr, and :func:`emit_json` writes to the real stdout. Libraries' own quiet switches are set as well
    (:data:`QUIET_ENV`, unless the user set them)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    real = sys.stdout
    real.flush()
    fd = _fileno(real)
    err_fd = _fileno(sys.stderr)
    if fd is None or err_fd is None:  # an in-memory stdout (tests' CliRunner): Python-level writes only
        out, saved = real, None
    else:
        saved = os.dup(fd)
        out = io.TextIOWrapper(os.fdopen(saved, "wb", closefd=False), encoding=getattr(real, "encoding", None) or "utf-8",
                               line_buffering=True)
        os.dup2(err_fd, fd)
    sys.stdout = sys.stderr
    _JSON_OUT.append(out)
    try:
        yield
    finally:
        _JSON_OUT.pop()
        sys.stdout = real
        out.flush()
        if saved is not None:
            sys.stderr.flush()
            os.dup2(saved, fd)
            out.detach()
            os.close(saved)


def _fileno(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        return None


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
