"""One-line error text for messages that must stay one line."""

from __future__ import annotations

import re


def one_line(err: BaseException, limit: int = 240, *, typed: bool = False) -> str:
    """An exception's text on one line (whitespace collapsed, colour codes dropped), cut at ``limit``;
    ``typed`` puts the exception's class name first."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", " ".join(str(err).split()))
    if typed:
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."
