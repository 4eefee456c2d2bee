"""Class labels for calibration images, from a CSV; only the labelled Taylor baseline uses them.

The tool itself never needs labels. Format: a header ``file,class_index[,class_name]``, one
row per image. ``file`` is a file name (``00042.jpg``) or a relative path (``cats/00042.jpg``);
a path is needed only where two calibration images share a name.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path, PurePosixPath
from typing import Sequence

from .errors import CalibrationError

_HINT = "the CSV needs a header file,class_index[,class_name] and one row per calibration image"


def _rows(csv_path: Path) -> list[tuple[tuple[str, ...], int]]:
    """``(path parts, class index)`` per row; the header and values are validated."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip().lower() for h in next(reader, [])]
            if "file" not in header or "class_index" not in header:
                raise CalibrationError(f"labels CSV {csv_path} has header {','.join(header) or '(none)'}", _HINT)
            fi, ci = header.index("file"), header.index("class_index")
            rows = []
            for line, rec in enumerate(reader, start=2):
                if not rec or all(not c.strip() for c in rec):
                    continue
                try:
                    name, label = rec[fi].strip(), int(rec[ci].strip())
                except (IndexError, ValueError):
                    raise CalibrationError(f"labels CSV {csv_path} line {line}: cannot read {rec!r}", _HINT) from None
                if label < 0 or not name:
                    raise CalibrationError(f"labels CSV {csv_path} line {line}: bad row {rec!r}",
                                           "class_index must be an int >= 0 and file must not be empty")
                parts = tuple(p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in (".", "/"))
                rows.append((parts, label))
    except FileNotFoundError:
        raise CalibrationError(f"labels CSV {csv_path} does not exist", _HINT) from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise CalibrationError(f"cannot read labels CSV {csv_path}: {err}", _HINT) from None
    return rows


def read_labels_csv(csv_path: str | Path, paths: Sequence[str | Path]) -> list[int]:
    """The class index of each of ``paths`` (same order), looked up in ``csv_path``.

    A row whose ``file`` is a relative path matches an image whose path ends with those parts
    (the longest such row wins); a bare file name matches by name, but only when no other
    calibration image has that name. Missing or ambiguous images raise
    :class:`CalibrationError` naming the image and the CSV.
    """
    csv_path = Path(csv_path)
    rows = _rows(csv_path)
    by_name: dict[str, list[tuple[tuple[str, ...], int]]] = defaultdict(list)
    for parts, label in rows:
        by_name[parts[-1]].append((parts, label))
    paths = [Path(p) for p in paths]
    name_count = Counter(p.name for p in paths)

    labels: list[int] = []
    missing: list[Path] = []
    for path in paths:
        cands = by_name.get(path.name, [])
        with_dirs = [(parts, lab) for parts, lab in cands if len(parts) > 1 and path.parts[-len(parts):] == parts]
        bare = [lab for parts, lab in cands if len(parts) == 1]
        if with_dirs:
            longest = max(len(parts) for parts, _ in with_dirs)
            found = {lab for parts, lab in with_dirs if len(parts) == longest}
        elif bare and name_count[path.name] == 1:
            found = set(bare)
        elif bare:
            raise CalibrationError(
                f"labels CSV {csv_path}: {name_count[path.name]} calibration images are named {path.name}, "
                f"so the row for {path.name} is ambiguous", "give relative paths (folder/name) in the file column")
        else:
            missing.append(path)
            continue
        if len(found) != 1:
            raise CalibrationError(f"labels CSV {csv_path} gives {path} several classes: {sorted(found)}",
                                   "keep one row per image")
        labels.append(found.pop())
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise CalibrationError(f"calibration image {missing[0]} is not in labels CSV {csv_path}{more}",
                               "add a file,class_index row for every calibration image")
    return labels
