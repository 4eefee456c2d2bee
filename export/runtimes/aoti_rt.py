"""AOTInductor (``torch.export`` + ``torch._inductor.aoti_compile_and_package``): a ``.pt2`` package that a
Python or C++ process runs without the model's code, compiled for the CPU or a CUDA GPU.

* ``model.aoti.pt2``: ``torch.export`` of the model in eval mode with a dynamic batch of 1..``MAX_BATCH``,
  compiled by Inductor to C++ (CPU; needs the C++ compiler torch finds: ``$CXX`` or ``g++``/``clang++``)
  or to Triton kernels with a C++ wrapper (CUDA), FP32. ``compress export`` writes the CPU package and
  verifies it against PyTorch on the calibration images like every format.
* The package's metadata records the input shape (C, H, W) and the batch range it was compiled for;
  :meth:`AOTIRuntime.load` refuses any other shape with one line (the compiled code would read the
  buffer with the wrong strides otherwise: it does not check shapes unless ``AOTI_RUNTIME_CHECK_INPUTS``
  is set).
* A package runs only on the device kind it was compiled for (``AOTI_DEVICE_KEY`` in its metadata):
  ``compress bench --device cuda`` compiles a CUDA package of each side into ``bench/`` (``run.deploy``).
* Threads: the package's OpenMP loops use torch's OpenMP runtime (same ``libgomp`` soname), so
  ``torch.set_num_threads`` fixes them as for the torch rows.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from compress.export.errors import ExportError
from compress.export.runtimes.base import Runtime

FP32_NAME = "model.aoti.pt2"
MAX_BATCH = 1024  # the dynamic batch's upper bound (the package refuses larger batches)
SHAPE_KEY, MAX_BATCH_KEY = "compress_input_shape", "compress_max_batch"


class AOTIRuntime(Runtime):
    name = "aoti"
    title = "AOTInductor"
    formats = ("aoti",)

    def available(self) -> tuple[bool, str]:
        try:
            compiler = cxx()
        except Exception as err:
            first = (str(err).strip().splitlines() or [""])[0][:160]
            return False, f"AOTInductor needs a C++ compiler (set CXX or install g++): {first}"
        return True, f"AOTInductor (torch {self.version()}, {Path(compiler).name})"

    def version(self) -> str | None:
        import torch

        return torch.__version__

    def describe(self) -> dict[str, Any]:
        return {"torch": self.version(), "aoti_cxx": _cxx_version()}

    def require(self):
        ok, reason = self.available()
        if not ok:
            from compress.export.errors import RuntimeUnavailable

            raise RuntimeUnavailable(reason, "install a C++ compiler (apt-get install g++) or set CXX")
        return None

    def row_device(self, device: str) -> str:
        return str(device)  # rows run where --device says (a CUDA package on a GPU)

    # ---------------------------------------------------------------- running
    def import_runtime(self) -> None:
        import torch
        import torch._inductor  # noqa: F401  (the package loader)

        torch.empty(1)

    def compiled(self, artifact: Path, threads: int | None, device: str | None = None):
        """``(callable on torch tensors, its metadata)`` of a ``.pt2`` package (a CUDA one on ``device``'s index)."""
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        index = torch.device(device).index if device is not None else None
        try:
            loaded = torch._inductor.aoti_load_package(str(artifact), device_index=-1 if index is None else index)
        except Exception as err:
            first = (str(err).strip().splitlines() or [""])[0][:200]
            raise ExportError(f"cannot load AOTInductor package {Path(artifact).name}: {type(err).__name__}: {first}",
                              "re-export it with this torch (compress export --format aoti)") from err
        return loaded, loaded.get_metadata()

    def load(self, artifact, threads, batch=None):
        import torch

        run, meta = self.compiled(Path(artifact), threads)
        device = package_device(meta)

        def call(x: np.ndarray):
            xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            check_input(tuple(xt.shape), meta, Path(artifact).name)
            with torch.inference_mode():
                out = first_tensor(run(xt.to(device)))
            return out.float().cpu().numpy()

        return call

    def runner(self, artifact, module, example, threads, device):
        import torch

        run, meta = self.compiled(Path(artifact), threads, device)
        kind = package_device(meta)
        if torch.device(device).type != kind:
            raise ExportError(f"{Path(artifact).name} is compiled for {kind}, not {device}",
                              f"compile a package for {device} (compress bench compiles one into bench/)")
        x = example.detach().to(device, torch.float32).contiguous()
        check_input(tuple(x.shape), meta, Path(artifact).name)
        cuda = kind == "cuda"

        def call() -> None:
            with torch.inference_mode():
                run(x)
            if cuda:
                torch.cuda.synchronize(x.device)

        return call

    def from_onnx(self, onnx_path, example, threads):
        raise ExportError("AOTInductor compiles nn.Modules, not ONNX models", "time it on whole networks (runner_for)")

    def runner_for(self, module, example, threads, device: str = "cpu"):
        """A runner of ``module`` compiled to a package at ``example``'s shape (latency tables' networks)."""
        with tempfile.TemporaryDirectory(prefix="compress-aoti-") as tmp:
            path = package(module, tuple(example.shape[1:]), Path(tmp) / "net.pt2", device=device,
                           max_batch=max(2, len(example)))
            return self.runner(path, module, example, threads, device)

    # ---------------------------------------------------------------- export
    def export(self, model, folder, formats, images, *, onnx_path, int8_onnx, calibration, say_info, say_warn):
        self.require()
        start = time.perf_counter()
        path = package(model, tuple(images.shape[1:]), folder / FP32_NAME)
        seconds = time.perf_counter() - start
        check = self.verify(path, model, images)
        record = {"aoti": {"path": path.name, "torch": self.version(), "device": "cpu", "compiler": _cxx_version(),
                           "dynamic_batch": [1, MAX_BATCH], "compile_seconds": round(seconds, 1),
                           "size_bytes": path.stat().st_size, "verification": check.to_dict()}}
        say_info(f"export: {path.name} (AOTInductor, torch {self.version()}, CPU FP32, compiled in {seconds:.0f} s) "
                 f"matches PyTorch: max |diff| {check.max_abs_diff:.1e}, top-1 agreement {check.top1_agreement:.1%} "
                 f"on {check.n} images")
        return record


def package(model, shape, path: Path, *, device: str = "cpu", max_batch: int = MAX_BATCH) -> Path:
    """Compile ``model`` (eval mode, a copy on ``device``) for inputs ``(1..max_batch, *shape)`` into the
    ``.pt2`` package ``path``, written atomically (compiled in a temporary sibling folder, then renamed)."""
    import copy

    import torch
    from torch.export import Dim

    path = Path(path)
    net = copy.deepcopy(model).eval().to(device)
    example = torch.randn((2, *shape), generator=torch.Generator().manual_seed(0)).to(device)
    meta = {SHAPE_KEY: ",".join(str(int(d)) for d in shape), MAX_BATCH_KEY: str(int(max_batch))}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".compress-aoti-", dir=path.parent) as tmp:
        try:
            with torch.no_grad():
                program = torch.export.export(net, (example,),
                                              dynamic_shapes=({0: Dim("batch", min=1, max=int(max_batch))},))
                out = torch._inductor.aoti_compile_and_package(
                    program, package_path=str(Path(tmp) / "model.pt2"),
                    inductor_configs={"aot_inductor.metadata": meta})
        except Exception as err:
            first = (str(err).strip().splitlines() or [""])[0][:300]
            raise ExportError(f"cannot compile {type(model).__name__} with AOTInductor: {type(err).__name__}: {first}",
                              "torch.export must capture the forward with a dynamic batch; or skip --format aoti") from err
        os.replace(out, path)
    return path


def package_device(meta: dict) -> str:
    """``cpu`` or ``cuda``: what a package was compiled for."""
    return "cuda" if str(meta.get("AOTI_DEVICE_KEY", "cpu")).startswith("cuda") else "cpu"


def check_input(shape: tuple[int, ...], meta: dict, label: str) -> None:
    """:class:`ExportError` unless ``shape`` is ``(1..max batch, *the compiled shape)``."""
    want = tuple(int(d) for d in str(meta.get(SHAPE_KEY, "")).split(",") if d)
    top = int(meta.get(MAX_BATCH_KEY, 0) or 0)
    if not want:
        raise ExportError(f"{label} has no input shape in its metadata (not written by compress)",
                          "re-export it with compress export --format aoti")
    if tuple(shape[1:]) != want or not 1 <= shape[0] <= top:
        raise ExportError(f"{label} takes inputs (1..{top}, {', '.join(map(str, want))}), got {tuple(shape)}",
                          "re-export it for this input size or batch")


def first_tensor(out):
    """The first tensor of a package's output (a tensor, or a tuple/list/dict of them)."""
    while not hasattr(out, "detach"):
        if isinstance(out, dict):
            out = next(iter(out.values()))
        elif isinstance(out, (list, tuple)) and out:
            out = out[0]
        else:
            raise ExportError(f"an AOTInductor package returned {type(out).__name__}, not tensors")
    return out


def cxx() -> str:
    """The C++ compiler Inductor will use (raises when there is none)."""
    from torch._inductor.cpp_builder import get_cpp_compiler

    return get_cpp_compiler()


def _cxx_version() -> str | None:
    import subprocess

    try:
        out = subprocess.run([cxx(), "--version"], capture_output=True, text=True, timeout=20).stdout
    except Exception:
        return None
    return (out.strip().splitlines() or [None])[0]
