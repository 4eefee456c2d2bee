"""Tiny image files written with PIL for the calibrate tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_rgb(path: Path, size: tuple[int, int] = (8, 6), seed: int = 0, **save) -> Path:
    """A random RGB image of ``size`` (W, H) saved at ``path`` (format from the extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, **save)
    return path


def write_bad_files(folder: Path) -> dict[str, Path]:
    """Four files with image extensions that are not readable images."""
    folder.mkdir(parents=True, exist_ok=True)
    good = write_rgb(folder / "_tmp_full.jpg", (64, 64), seed=9, quality=95)
    data = good.read_bytes()
    good.unlink()
    files = {
        "truncated": folder / "truncated.jpg",
        "zero": folder / "zero.png",
        "text": folder / "text.jpg",
        "corrupt": folder / "corrupt.png",
    }
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["zero"].write_bytes(b"")
    files["text"].write_text("this is not a picture\n")
    files["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(1).bytes(300))
    return files
