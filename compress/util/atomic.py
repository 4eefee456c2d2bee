"""Atomic outputs: a file or folder either appears complete or not at all.

Every writer here turns a failure to write (disk full, no permission, read-only file system, a
file in the way) into one :class:`~compress.util.errors.OutputError` line naming the output (exit 8),
after removing what it had started: :func:`write_failure` is that one place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from compress.util.errors import OutputError


# errnos that mean "this cannot be written here", whatever library was writing
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EEXIST, errno.EFBIG,
                errno.EIO, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}
# the same failures as libraries without an errno word them (safetensors' SafetensorError, protobuf...)
WRITE_TEXTS = {"no space left on device": errno.ENOSPC, "disk quota exceeded": errno.EDQUOT,
               "read-only file system": errno.EROFS}


def write_failure(err: BaseException, path: str | os.PathLike):
    """The :class:`OutputError` that ``err``, raised while writing the output ``path``, means; None
    when it is not a failure to write there (a bug, or a file elsewhere that could not be read)."""
    code = err.errno if isinstance(err, OSError) else None
    where = ""
    if isinstance(err, OSError) and err.filename is not None:
        parent = Path(os.path.abspath(path)).parent
        inside = Path(os.path.abspath(err.filename)).is_relative_to(parent)
        if not inside and code not in (errno.ENOSPC, errno.EDQUOT):
            return None  # e.g. an input that could not be read: not this output's failure
        where = "" if inside else f" (at {err.filename})"
    if code is None and not isinstance(err, (KeyboardInterrupt, SystemExit)):
        text = str(err).lower()
        code = next((c for phrase, c in WRITE_TEXTS.items() if phrase in text), None)
    if code not in WRITE_ERRNOS:
        return None
    what = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EPERM: "permission denied", errno.EEXIST: "something already exists there"}.get(
        code, os.strerror(code))
    hint = ("free some space or choose another -o" if code in (errno.ENOSPC, errno.EDQUOT)
            else "choose a writable location for -o")
    return OutputError(f"cannot write {path}: {what}{where} ([Errno {code}] {os.strerror(code)}); nothing was written",
                       hint)


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Re-raise a failure to write ``path`` as its :class:`OutputError` (cleanup is the caller's)."""
    try:
        yield
    except Exception as err:
        failure = write_failure(err, path)
        if failure is None:
            raise
        raise failure from err


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _normal_mode(path: str | os.PathLike, directory: bool = False) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; outputs get the usual umask mode."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temporary sibling of ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        _normal_mode(tmp)
        try:
            with os.fdopen(fd, mode) as handle:
                yield handle
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path to write to (by any library); renamed onto ``path`` on success."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
        os.close(fd)
        try:
            yield Path(tmp)
            _normal_mode(tmp)  # the library may have replaced the file with a private (0600) one
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_file(path, "w") as handle:
        handle.write(text)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary name; it takes ``path``'s place only when complete.

    An existing ``path`` is replaced only with ``overwrite=True`` (and only after success); which
    folders a command may replace is :func:`compress.artifacts.outputs.check_output`'s to decide, before.
    """
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
        _normal_mode(tmp, directory=True)
        try:
            yield tmp
            if path.exists():
                if not overwrite:
                    raise FileExistsError(errno.EEXIST, "the output appeared while this run was writing", str(path))
                replace_dir(tmp, path)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def replace_dir(src: Path, dst: Path) -> None:
    """Put the complete folder ``src`` where the folder ``dst`` is: ``dst`` moved aside, ``src`` renamed into
    place, the old one removed (two renames, so ``dst`` is never missing for longer than between them)."""
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def space_failure(where: str | os.PathLike, path: str | os.PathLike, needed: int):
    """The :class:`OutputError` (exit 8) for writing ``path`` when the file system holding ``where`` has fewer
    than ``needed`` bytes free; None when it has them (or cannot say). Writers whose library fails without an
    errno (onnxruntime's ORT format) or aborts the process (a C++ compiler) check it before, or after failing."""
    at = Path(os.path.abspath(where))
    while not at.exists() and at != at.parent:
        at = at.parent
    try:
        free = shutil.disk_usage(at).free
    except OSError:
        return None
    if free >= needed:
        return None
    return OutputError(f"cannot write {path}: the disk is full ({free / 2**20:.1f} MiB free at {at}, about "
                       f"{needed / 2**20:.1f} MiB needed); nothing was written", "free some space or choose another -o")
