"""Are two output folders the same except timings? ``python benchmarks/same_outputs.py REF NEW [OLD_ROOT NEW_ROOT]``.

Every ``.json``, ``.md`` and ``.onnx`` file under either folder is compared byte for byte. The ONNX exporter
writes each node's source stack trace into the file, with the checkout's path: given the two checkouts' roots,
an ONNX file that differs is compared again as text with the old root replaced by the new one, and when every
ONNX file is then the same, the ``size_bytes`` / ``sizes`` figures (which the path lengths change) are masked
in the JSON files. A JSON file that differs is
compared again with the figures that change from run to run masked (``TIMING`` keys: latencies, throughput,
memory, wall times, the clock, the load); a Markdown file line by line with its numbers masked on the lines
that hold timings. Prints one line per file (``same``, ``same except timings: <keys>``, or ``DIFFERENT: <where>``)
and exits 1 when any file is different or missing on one side.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

TIMING = {"latency_ms", "throughput", "memory", "memory_note", "speedup", "memory_change", "model_memory_change",
          "gpu_memory_change", "time", "load_average", "seconds", "compile_seconds", "images_per_s",
          "images_per_second", "wall_seconds", "elapsed_s", "latency_ratio", "latency_ratios", "line", "notes",
          "created"}
SIZES = {"size_bytes", "sizes", "size_change"}  # change with the stack traces' path lengths
NUMBER = re.compile(r"[-+±]?\d+(\.\d+)?( ?(ms|%|x|MiB|KiB|GiB|B))?( (faster|slower))?")


_EXTRA: set = set()
_FOLDERS: list = ["\0", "\0"]  # the two output folders' parents, as main sets them
PREEMPTED = "- note: other processes preempted"
PARTIAL = re.compile(r"/\.[^/]+\.partial")


def _mask(value, path="", hits=None):
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in TIMING or key.endswith(("_seconds", "_per_second")) or key.startswith("seconds") or key in _EXTRA:
                hits.add(key)
                out[key] = "<timing>"
            else:
                out[key] = _mask(item, f"{path}.{key}", hits)
        return out
    if isinstance(value, list):
        return [_mask(item, path, hits) for item in value]
    if isinstance(value, str):  # the output folder's own path, and the temporary name it was written under
        return PARTIAL.sub("", value.replace(str(_FOLDERS[0]), "<out>").replace(str(_FOLDERS[1]), "<out>"))
    return value


def _first_difference(a, b, path="") -> str:
    if type(a) is not type(b):
        return f"{path}: {a!r} vs {b!r}"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{path}: keys {list(a)} vs {list(b)}"
        for key in a:
            found = _first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return ""
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return ""
    return "" if a == b else f"{path}: {a!r} vs {b!r}"


def compare_json(ref: Path, new: Path) -> str:
    a, b = json.loads(ref.read_text()), json.loads(new.read_text())
    hits: set = set()
    found = _first_difference(_mask(a, hits=hits), _mask(b, hits=hits))
    return f"DIFFERENT: {found}" if found else f"same except timings: {', '.join(sorted(hits))}"


def compare_md(ref: Path, new: Path) -> str:
    a, b = ref.read_text().splitlines(), new.read_text().splitlines()
    if len(a) != len(b):
        return f"DIFFERENT: {len(a)} vs {len(b)} lines"
    masked = 0
    for x, y in zip(a, b):
        if x == y or (x.startswith(PREEMPTED) and y.startswith(PREEMPTED)):  # how often other processes ran
            continue
        if NUMBER.sub("#", x) != NUMBER.sub("#", y):
            return f"DIFFERENT: {x!r} vs {y!r}"
        masked += 1
    return f"same except numbers on {masked} lines (timing tables: check them by eye)"


def compare_onnx(ref: Path, new: Path, roots: tuple[str, str] | None) -> str:
    if roots is None:
        return "DIFFERENT: bytes (give the checkouts' roots to compare the stack traces' paths)"
    import onnx

    a = str(onnx.load(str(ref), load_external_data=False)).replace(roots[0], roots[1])
    b = str(onnx.load(str(new), load_external_data=False))
    return "same except the checkout's path in stack traces" if a == b else "DIFFERENT: graph or weights"


def main(ref: Path, new: Path, roots: tuple[str, str] | None = None) -> int:
    _FOLDERS[:] = [ref.resolve().parent, new.resolve().parent]
    names = sorted({p.relative_to(root) for root in (ref, new) for p in root.rglob("*")
                    if p.suffix in (".json", ".md", ".onnx") and p.is_file()}, key=lambda p: (p.suffix != ".onnx", p))
    bad = 0
    for name in names:
        a, b = ref / name, new / name
        if not a.is_file() or not b.is_file():
            verdict = f"DIFFERENT: only in {'new' if b.is_file() else 'ref'}"
        elif a.read_bytes() == b.read_bytes():
            verdict = "same"
        elif name.suffix == ".onnx":
            verdict = compare_onnx(a, b, roots)
        else:
            verdict = compare_json(a, b) if name.suffix == ".json" else compare_md(a, b)
        if name.suffix == ".onnx" and not bad and not verdict.startswith("DIFFERENT"):
            _EXTRA.update(SIZES if roots else ())
        bad += verdict.startswith("DIFFERENT")
        print(f"{name}: {verdict}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), tuple(sys.argv[3:5]) if len(sys.argv) >= 5 else None))
