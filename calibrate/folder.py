"""Find the images of a folder, decode any of them to RGB, and keep only those that decode.

Decisions, so that the same folder always gives the same images:

* Candidates are files whose extension is in :data:`IMAGE_EXTENSIONS` (any case), found
  recursively, sorted by path. Files and folders whose name starts with ``.`` are skipped
  (``.DS_Store``, ``.ipynb_checkpoints``, editors' temp files). Symlinked folders inside the folder are
  followed once (a link back up the tree is not followed again); a symlink leading out of it is refused
  unless ``COMPRESS_FOLLOW_LINKS=1`` (the CLI's ``--follow-links``).
* Alpha is **dropped**, not composited: the colour under a transparent pixel is kept, exactly as
  ``torchvision.datasets.folder.pil_loader`` (``img.convert("RGB")``) does, so calibration sees
  the same pixels the model was trained on.
* 16-bit and 32-bit grey images are rescaled to 8 bits (``I;16*``: ``v / 257``), not clipped.
  For modes ``I`` and ``F`` the range is not stored in the file, so it is read off the pixels:
  ``F`` with all values in ``[0, 1]`` is scaled by 255; otherwise values up to 255 are kept as
  8-bit and larger ones are taken as 16-bit (``/ 257``, clipped to ``[0, 65535]``).
* EXIF orientation is applied before anything else, so a portrait photo stays portrait.
"""

from __future__ import annotations

import logging
import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import CalibrationError

log = logging.getLogger("compress.calibrate")

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

_EXT_HINT = "use " + ", ".join(sorted(IMAGE_EXTENSIONS)) + " images; subfolders are searched, hidden files are not"


def is_image_name(path: str | Path) -> bool:
    """True when the file name has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


FOLLOW_LINKS_ENV = "COMPRESS_FOLLOW_LINKS"  # "1": read through symlinks that lead out of the folder (--follow-links)


def _outside(path: str, top: str) -> bool:
    real = os.path.realpath(path)
    return real != top and not real.startswith(top.rstrip(os.sep) + os.sep)


def _walk(root: Path) -> tuple[list[Path], int]:
    """All non-hidden files under ``root``: (image-named files sorted, count of the others). A symlink (file or
    folder) that leads out of ``root`` is refused unless ``COMPRESS_FOLLOW_LINKS=1`` (``--follow-links``): it
    would silently add images from elsewhere, a labelled evaluation set among them."""
    images: list[Path] = []
    others = 0
    seen: set[str] = set()
    top = os.path.realpath(root)
    follow = os.environ.get(FOLLOW_LINKS_ENV) == "1"
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink cycle: do not walk the same folder twice
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in [*dirnames, *filenames]:
            link = os.path.join(dirpath, name)
            if not follow and not name.startswith(".") and os.path.islink(link) and _outside(link, top):
                raise CalibrationError(f"{link} is a symlink to {os.path.realpath(link)}, outside the image folder "
                                       f"{root}", "pass --follow-links to read images through it, or copy them in")
        for name in filenames:
            if name.startswith("."):
                continue
            if is_image_name(name):
                images.append(Path(dirpath) / name)
            else:
                others += 1
    images.sort()
    return images, others


def _check_root(root: str | Path) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise CalibrationError(f"image folder {root} does not exist", "pass a folder of images")
    if not root.is_dir():
        raise CalibrationError(f"{root} is not a folder", "pass the folder that holds the images, not a single file")
    return root


def find_images(root: str | Path) -> list[Path]:
    """Image-named files under ``root`` (recursive, hidden skipped), sorted. Nothing is decoded."""
    return _walk(_check_root(root))[0]


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB (see the module docstring for alpha and high-bit-depth rules)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img).astype(np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0
        else:
            finite = arr[np.isfinite(arr)]
            top = float(finite.max()) if finite.size else 0.0
            if mode == "F" and top <= 1.0:
                arr = arr * 255.0
            elif top > 255.0:
                arr = np.clip(arr, 0.0, 65535.0) / 257.0
        arr = np.nan_to_num(arr, nan=0.0, posinf=255.0, neginf=0.0)
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "P":
        # Palette transparency must go through RGBA, else PIL warns; the alpha is then dropped.
        img = img.convert("RGBA") if "transparency" in img.info else img
        return img.convert("RGB")
    if mode in ("LA", "La", "PA"):
        return img.convert("RGBA").convert("RGB")
    return img.convert("RGB")  # L, 1, RGBA, RGBa, RGBX, CMYK, YCbCr, HSV ...


to_rgb = _to_rgb  # the public name (tests/calibrate/test_decode.py)


def _open(path: Path, *, draft: bool) -> Image.Image:
    with Image.open(path) as img:
        if draft and img.format == "JPEG":
            # DCT scaling still reads every byte of the stream (so truncation is caught) but
            # decodes at 1/8 size: a cheap full check for large photos.
            img.draft(None, (1, 1))
        img.load()
        img = ImageOps.exif_transpose(img)
        return _to_rgb(img)


def load_rgb(path: str | Path) -> Image.Image:
    """Decode ``path`` fully, apply its EXIF orientation, return an 8-bit RGB image."""
    return _open(Path(path), draft=False)


def _reason(path: Path, err: BaseException) -> str:
    """A few words saying why a file is not a usable image."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    if isinstance(err, UnidentifiedImageError):
        return "not an image"
    text = str(err)
    if "truncated" in text.lower():
        return "truncated"
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def check_image(path: Path) -> str | None:
    """``None`` when ``path`` decodes fully to RGB, else why not."""
    try:
        _open(path, draft=True)
    except Exception as err:  # any decoder failure means "not usable", never a crash
        return _reason(path, err)
    return None


def default_threads() -> int:
    """Threads for decoding: PIL's decoders release the GIL, so a few per core help."""
    return max(2, min(16, 2 * (os.cpu_count() or 1)))


def check_images(paths: list[Path], *, threads: int | None = None) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Decode ``paths`` on a thread pool: (usable paths in input order, skipped with reasons)."""
    if not paths:
        return [], []
    with ThreadPoolExecutor(min(threads or default_threads(), len(paths))) as pool:
        reasons = list(pool.map(check_image, paths))
    good = [p for p, why in zip(paths, reasons) if why is None]
    bad = [(p, why) for p, why in zip(paths, reasons) if why is not None]
    return good, bad


def warn_skipped(root: Path, skipped: list[tuple[Path, str]], total: int) -> None:
    """The one warning for a folder's unreadable files (nothing when there are none)."""
    if not skipped:
        return
    first, why = min(skipped)
    log.warning("skipped %d of %d files in %s that are not readable images (first: %s: %s)",
                len(skipped), total, root, _rel(first, root), why)


def _rel(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:
        return path


@dataclass
class ImageList:
    """The usable images of a folder (sorted), and the files skipped with the reason."""

    root: Path
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    ignored: int = 0  # non-hidden files without an image extension (never candidates)

    def __len__(self) -> int:
        return len(self.paths)


def scan_folder(root: str | Path, *, max_images: int | None = None, seed: int = 0,
                threads: int | None = None) -> ImageList:
    """Usable images under ``root``, each one checked by decoding it fully.

    Unreadable files (corrupt, truncated, empty, not an image) are skipped with ONE warning on
    the ``calibrate`` logger. ``max_images`` keeps a random subset fixed by ``seed``: candidates
    are visited in a seeded shuffled order until ``max_images`` usable ones are found (so a
    skipped file does not shrink the subset), and the result is sorted.
    """
    root = _check_root(root)
    if max_images is not None and max_images < 1:
        raise CalibrationError(f"max_images must be at least 1, got {max_images}")
    candidates, ignored = _walk(root)
    order = list(candidates)
    if max_images is not None and max_images < len(order):
        random.Random(seed).shuffle(order)
    want = len(order) if max_images is None else min(max_images, len(order))

    kept: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    checked = 0
    chunk = max(64, want)
    while len(kept) < want and checked < len(order):
        batch = order[checked:checked + chunk]
        checked += len(batch)
        good, bad = check_images(batch, threads=threads)
        kept.extend(good[:want - len(kept)])
        skipped.extend(bad)
        chunk = max(64, 2 * (want - len(kept)))

    warn_skipped(root, skipped, checked)
    if not kept:
        if candidates:
            first, why = min(skipped)
            detail = f"all {len(candidates)} image files are unreadable; first: {_rel(first, root)}: {why}"
        else:
            detail = f"no file with an image extension among {ignored} files" if ignored else "the folder is empty"
        raise CalibrationError(f"no usable image in {root} ({detail})", _EXT_HINT)
    kept.sort()
    skipped.sort()
    return ImageList(root=root, paths=kept, skipped=skipped, ignored=ignored)
