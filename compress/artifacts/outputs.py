"""Where a command may write: one policy, checked before anything is loaded, that cannot destroy
a user's files.

- ``-o`` may never be, contain, or sit inside an input (checkpoint, ``--calib``, ``--eval``,
  ``--labels``, ``--arch`` file), compared after resolving symlinks.
- A command that *replaces* its output folder (``prune``, ``sweep``) replaces an existing one only
  with ``--overwrite``, and only when it is an earlier output of this tool (it holds one of the
  ``markers``, e.g. ``compress.json``) or is empty; any other folder is refused with the reason.
- A command that *adds* files to a folder (``export``, ``bench``) writes only into a new or empty
  folder or an earlier output.
- An existing file at ``-o`` is refused with the same message whatever the flags.
- The location must be writable: a probe folder is created and removed where the output will be
  built, so ``-o /proc/x`` or a read-only disk fails in a second, not after the work.

Failures are :class:`UsageError` (exit 2) for a location that is not allowed, and
:class:`OutputError` (exit 8) for one that cannot be written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from compress.artifacts.names import RECORD  # its presence marks an earlier output
from compress.errors import OutputError, UsageError
from compress.util.atomic import atomic_dir, replace_dir, writing


def check_output(out: str | os.PathLike, *, inputs: Mapping[str, str | os.PathLike | None] | None = None,
                 overwrite: bool = False, replaces: bool = True,
                 markers: Iterable[str] = (RECORD,)) -> Path:
    """Raise unless ``out`` may be written as described above; return it as a Path.

    ``inputs`` maps how each input was given (``"checkpoint"``, ``"--calib"``...) to its path;
    ``None`` values are skipped. ``markers``: file names whose presence makes an existing folder an
    earlier output of this tool.
    """
    out = Path(out)
    real = _real(out)
    for option, given in (inputs or {}).items():
        if given is None:
            continue
        src = _real(Path(given))
        if real == src:
            raise UsageError(f"output {out} would overwrite the input {given} ({option})", "choose another -o")
        if src.is_relative_to(real):
            raise UsageError(f"output {out} contains the input {given} ({option})", "choose another -o")
        if real.is_relative_to(src):
            raise UsageError(f"output {out} is inside the input {given} ({option})", "choose another -o")
    if replaces and Path.cwd().resolve().is_relative_to(real):
        raise UsageError(f"output {out} is the current folder or holds it", "choose a new folder for -o")
    if out.exists() or out.is_symlink():
        _check_existing(out, overwrite=overwrite, replaces=replaces, markers=tuple(markers))
    probe_writable(out if out.is_dir() and not replaces else out.parent, out)
    return out


def default_out(checkpoint: str | os.PathLike) -> Path:
    """``prune``'s output when ``-o`` is not given: ``CHECKPOINT.pruned`` next to it."""
    path = Path(checkpoint)
    return path.with_name(f"{path.stem if path.is_file() else path.name}.pruned")


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path.expanduser()))


def _check_existing(out: Path, *, overwrite: bool, replaces: bool, markers: tuple[str, ...]) -> None:
    if not out.is_dir():
        raise UsageError(f"output {out} is an existing file, not a folder",
                         "choose another -o; --overwrite never replaces a file")
    entries = sorted(p.name for p in out.iterdir())
    earlier = any((out / m).exists() for m in markers)
    if not replaces:
        if entries and not earlier:
            raise UsageError(f"output folder {out} holds other files ({_some(entries)}) and is not an output of "
                             "compress", "choose a new or empty folder for -o")
        return
    if not overwrite:
        hint = ("pass --overwrite to replace it, or choose another -o" if earlier or not entries
                else "choose another -o (--overwrite replaces only an earlier compress output or an empty folder)")
        raise UsageError(f"output folder {out} already exists", hint)
    if entries and not earlier:
        raise UsageError(f"output folder {out} is not an earlier compress output (no {markers[0]}) and holds "
                         f"{_some(entries)}: --overwrite would delete them",
                         "choose another -o; --overwrite replaces only an earlier compress output or an empty folder")


def _some(names: list[str]) -> str:
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return ", ".join(names[:3]) + more


def probe_writable(where: Path, out: Path) -> None:
    """Create and remove a folder at the nearest existing ancestor of ``where`` (which the writer
    will create its temporary output in); :class:`OutputError` naming ``out`` when that fails."""
    at = Path(os.path.abspath(where))
    while not at.exists() and at != at.parent:
        at = at.parent
    if not at.is_dir():
        raise UsageError(f"output {out} cannot be created: {at} is a file, not a folder", "choose another -o")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".compress-probe-", dir=at))
    except OSError as err:
        raise OutputError(f"output {out} cannot be written: cannot create anything in {at} ({err.strerror})",
                          "choose a writable location for -o") from None


def input_paths(**given: str | os.PathLike | None) -> dict[str, str | os.PathLike | None]:
    """``inputs`` for :func:`check_output` from option values (``calib=...`` -> ``"--calib"``);
    ``arch`` contributes its file when it names one (``path/to/file.py:factory``)."""
    out: dict[str, str | os.PathLike | None] = {}
    for key, value in given.items():
        if key == "arch":
            value = arch_file(value)
        out[key if key == "checkpoint" else f"--{key.replace('_', '-')}"] = value
    return out


def arch_file(arch: str | None) -> str | None:
    """The file an ``--arch path/to/file.py:factory`` spec names (None for other specs)."""
    if not arch or ":" not in arch:
        return None
    path = arch.rsplit(":", 1)[0]
    return path if path.endswith(".py") and Path(path).is_file() else None


@contextlib.contextmanager
def staged_files(folder: str | os.PathLike, *, last: str) -> Iterator[Path]:
    """Yield a temporary folder to make files in; only when the block succeeds are they moved into ``folder``
    (``last``, the record naming them, moved last), replacing same-named ones. A new ``folder`` appears whole
    (:func:`atomic_dir`); on any failure, Ctrl-C included, nothing is added and nothing is replaced."""
    folder = Path(folder)
    if not folder.exists():
        with atomic_dir(folder) as tmp:
            yield tmp
        return
    with writing(folder / last):
        tmp = Path(tempfile.mkdtemp(prefix=".compress-stage-", suffix=".partial", dir=folder))
    try:
        yield tmp
        with writing(folder / last):
            for name in sorted(os.listdir(tmp), key=lambda n: (n == last, n)):
                _move_in(tmp / name, folder / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _move_in(src: Path, dst: Path) -> None:
    if dst.is_dir() and not dst.is_symlink():
        replace_dir(src, dst)
    else:
        os.replace(src, dst)


@contextlib.contextmanager
def rolled_back(folder: str | os.PathLike) -> Iterator[Path]:
    """Write into ``folder``: a new one appears only whole (:func:`atomic_dir`, the block gets its temporary
    name); in an existing one, every entry the block added is removed again when it fails (Ctrl-C included)."""
    folder = Path(folder)
    if not folder.exists():
        with atomic_dir(folder) as tmp:
            yield tmp
        return
    before = {str(p) for p in folder.rglob("*")}
    try:
        yield folder
    except BaseException:
        for path in sorted((p for p in folder.rglob("*") if str(p) not in before), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        raise
