"""Bytes on disk of deployment artifacts, ONNX external-data files included."""

from __future__ import annotations

from pathlib import Path


def onnx_external_files(path: str | Path) -> list[Path]:
    """Files an ONNX model keeps its tensors in besides itself (``external_data`` locations)."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    path = Path(path)
    proto = onnx.load(str(path), load_external_data=False)
    found: list[Path] = []
    tensors = list(proto.graph.initializer)
    for node in proto.graph.node:  # Constant nodes may hold external tensors too
        tensors.extend(a.t for a in node.attribute if a.HasField("t"))
    for tensor in tensors:
        if uses_external_data(tensor):
            location = next((e.value for e in tensor.external_data if e.key == "location"), None)
            if location:
                candidate = path.parent / location
                if candidate not in found:
                    found.append(candidate)
    return found


def artifact_size(path: str | Path) -> int:
    """Size of one artifact: a file (+ its ONNX external data) or every file under a folder (a runtime whose
    files come in parts sizes them itself: ``Runtime.file_size``)."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    size = path.stat().st_size
    if path.suffix.lower() == ".onnx":
        size += sum(p.stat().st_size for p in onnx_external_files(path) if p.is_file())
    return size


def artifact_sizes(paths: dict[str, Path]) -> dict[str, int]:
    """``{label: bytes}`` for ``{label: path}``; missing paths are left out."""
    return {label: artifact_size(p) for label, p in paths.items() if p is not None and Path(p).exists()}
