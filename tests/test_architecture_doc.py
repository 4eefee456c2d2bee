"""ARCHITECTURE.md stays true: every path it names exists, and every dotted name it gives under a module
of the project (``run.stages.cut``, ``artifacts.summary.RunSummary``) is defined in that module."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "ARCHITECTURE.md"
PACKAGES = {"compress": ROOT / "compress", "export": ROOT / "export", "calibrate": ROOT / "calibrate"}
HYPOTHETICAL = {"compress/base/"}  # named as what could be, not what is


def _modules() -> dict[str, list[Path]]:
    """Every dotted suffix of every project module ("stages", "run.stages", "compress.run.stages") -> files."""
    found: dict[str, list[Path]] = {}
    for pkg, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [pkg if pkg != "compress" else None, *path.relative_to(folder).with_suffix("").parts]
            parts = [p for p in parts if p]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            for k in range(len(parts)):
                found.setdefault(".".join(parts[k:]), []).append(path)
    return found


def _defines(path: Path, name: str) -> bool:
    pattern = rf"^\s*(def|class)\s+{re.escape(name)}\b|^\s*{re.escape(name)}\s*[:=]|\bimport\b.*\b{re.escape(name)}\b"
    return re.search(pattern, path.read_text(), re.M) is not None


def _tokens() -> list[str]:
    return sorted(set(re.findall(r"`([^`\s]+)`", DOC.read_text())))


def test_every_path_in_architecture_md_exists():
    missing = []
    for token in _tokens():
        if "/" not in token or "<" in token or token in HYPOTHETICAL or token.startswith("-"):
            continue
        if not token.endswith(("/", ".py", ".md", ".toml")) and not re.fullmatch(r"\.?[\w/-]+", token):
            continue  # a module path with an attribute (run/deploy.RUNTIME_FORMATS): the dotted check reads it
        if not any((base / token).exists() for base in (ROOT, ROOT / "compress", ROOT / "export")):
            missing.append(token)
    assert not missing, f"ARCHITECTURE.md names paths that do not exist: {missing}"


ARTIFACTS = (".onnx", ".pt2", ".engine", ".pte", ".xml", ".bin", ".ort", ".safetensors", ".png", ".pt", ".th")


def test_every_dotted_name_in_architecture_md_is_defined():
    modules, wrong = _modules(), []
    for token in _tokens():
        if token.endswith((".py", ".md", ".toml", ".json", "/")):
            continue  # a path: the test above
        if token.endswith(ARTIFACTS):
            continue  # an output file's name (model.onnx), not a module attribute
        name = re.sub(r"\(.*$", "", token).replace("/", ".").removeprefix("compress.")
        parts = name.split(".")
        if len(parts) < 2 or not all(re.fullmatch(r"[A-Za-z]\w*", p) for p in parts):
            continue
        k = next((k for k in range(len(parts), 0, -1) if ".".join(parts[:k]) in modules), 0)
        if k == 0 or k == len(parts):
            continue  # not under a module of the project, or the module itself
        files = modules[".".join(parts[:k])]
        if not any(_defines(f, parts[k]) for f in files):
            wrong.append(token)
    assert not wrong, f"ARCHITECTURE.md names what its module does not define: {wrong}"
