"""Helpers for the never-lose-a-file tests: fingerprints of inputs, and what a failed run left behind."""

from __future__ import annotations

import hashlib
from pathlib import Path


def fingerprint(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (a file counts as its own root), keyed by path."""
    out = {}
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def leftovers(folder: Path) -> list[str]:
    """Temporary entries a writer would leave after a failure: ``.X.partial``, ``.X.old``, probes, ``.tmp``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.rglob(".*")
                  if p.name.endswith((".partial", ".old", ".tmp")) or p.name.startswith(".compress-probe-"))
