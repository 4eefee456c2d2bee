"""Compare two output folders of ``compress prune`` file by file, timings aside.

    python -m tests.compare_runs REFERENCE NEW [REFERENCE_SOURCE NEW_SOURCE]

Every file is compared byte for byte. A JSON file that differs is compared again as data with the keys
that hold a measurement of the machine left out (times, memory, load average; note lines about them) and the two
folders' own paths (and their temporary ``.NAME.XXXXXXXX.partial`` names) made one; a Markdown file with the
lines that hold such a measurement left out. Prints one line per file and exits 1 when anything else
differs (issue 39: every output file of a run is identical to the reference's except timings). With the two
source trees the runs were made from, a binary file that names them (an ONNX graph's source locations) is
compared with one put in place of the other."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

TIMING_KEY = re.compile(r"(seconds|_ms$|^ms$|latency|images_per_second|per_second|created|p50|p90|p99|mean_ms|"
                        r"throughput|wall|elapsed|timing|^time|speedup|speed_up|cpu_load|iters|runs|memory|rss|"
                        r"load_average)", re.I)
TIMING_LINE = re.compile(r"(\d\s*ms\b|\bms\b|p50|latency|faster|slower|speed-up|images/s|\d+(\.\d+)?\s*s\b|created|"
                         r"load average|preempted|memory|RSS)", re.I)
PARTIAL = re.compile(r"\.[\w-]+\.\w{8}\.partial")


def _strip(value, roots: tuple[str, ...] = ()):
    if isinstance(value, dict):
        return {k: _strip(v, roots) for k, v in value.items() if not TIMING_KEY.search(str(k))}
    if isinstance(value, list):  # a list of lines (report notes): the lines about a measurement left out
        return [_strip(v, roots) for v in value if not (isinstance(v, str) and TIMING_LINE.search(v))]
    if isinstance(value, str):
        for root in roots:
            value = value.replace(root, "<out>")
        return PARTIAL.sub("<out>", value)
    return value


def _diff(a, b, where="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}/{k}: only in one" for k in sorted(set(a) ^ set(b))]
        for k in a:
            if k in b:
                out += _diff(a[k], b[k], f"{where}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {str(a)[:60]} != {str(b)[:60]}"]


def compare(ref: Path, new: Path, sources: tuple[str, str] | None = None) -> tuple[list[str], bool]:
    lines, ok = [], True
    names = sorted({p.relative_to(ref) for p in ref.rglob("*") if p.is_file()}
                   | {p.relative_to(new) for p in new.rglob("*") if p.is_file()})
    for name in names:
        a, b = ref / name, new / name
        if not a.is_file() or not b.is_file():
            lines.append(f"{name}: only in {'new' if b.is_file() else 'reference'}")
            ok = False
        elif a.read_bytes() == b.read_bytes():
            lines.append(f"{name}: identical")
        elif name.suffix == ".json":
            roots = (str(ref.parent), str(new.parent))  # a folder is written as PARENT/.NAME.XXXXXXXX.partial
            diffs = _diff(_strip(json.loads(a.read_text()), roots), _strip(json.loads(b.read_text()), roots))
            lines.append(f"{name}: differs in timings only" if not diffs else f"{name}: DIFFERS {diffs[:5]}")
            ok &= not diffs
        elif name.suffix == ".md":
            keep = lambda p: [ln for ln in p.read_text().splitlines()  # noqa: E731
                              if not TIMING_LINE.search(ln) and not re.match(r"\| \w+ \| \w+ \| (fp32|int8|fp16)", ln)]
            diffs = [f"{x!r} != {y!r}" for x, y in zip(keep(a), keep(b)) if x != y]
            diffs += [] if len(keep(a)) == len(keep(b)) else ["line counts differ"]
            lines.append(f"{name}: differs in timing lines only" if not diffs else f"{name}: DIFFERS {diffs[:3]}")
            ok &= not diffs
        elif sources and a.read_bytes().replace(sources[0].encode(), sources[1].encode()) == b.read_bytes():
            lines.append(f"{name}: identical but for the source tree's path ({sources[0]} vs {sources[1]})")
        else:
            lines.append(f"{name}: bytes differ ({a.stat().st_size} vs {b.stat().st_size} bytes)")
            ok &= name.suffix in (".png",)  # a plot of the timings
    return lines, ok


if __name__ == "__main__":
    result, same = compare(Path(sys.argv[1]), Path(sys.argv[2]), tuple(sys.argv[3:5]) if len(sys.argv) > 4 else None)
    print("\n".join(result))
    sys.exit(0 if same else 1)
