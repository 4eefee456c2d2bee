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
from compress.util.atomic import space_failure, write_failure
from compress.export.runtimes.base import Runtime
from compress.export.runtimes.cxx import compiler, cxx_version

FP32_NAME = "model.aoti.pt2"
MAX_BATCH = 1024  # the dynamic batch's upper bound (the package refuses larger batches)
SHAPE_KEY, MAX_BATCH_KEY = "compress_input_shape", "compress_max_batch"


class AOTIRuntime(Runtime):
    name = "aoti"
    title = "AOTInductor"
    formats = ("aoti",)

    optional = True
    follows_device = True
    latency = True
    layers_eager = True  # latency tables: layers alone in eager torch, networks compiled (see timer_describe)
    files = {"aoti": FP32_NAME}
    hint = "AOTInductor .pt2; a C++ compiler"
    bench_hint = "AOTInductor .pt2; a C++ compiler"
    env_labels = (("aoti_cxx", "AOTInductor with"),)

    def available(self) -> tuple[bool, str]:
        found, reason = compiler()
        if found is None:
            return False, f"AOTInductor needs a C++ compiler (set CXX or install g++): {reason}"
        return True, f"AOTInductor (torch {self.version()}, {Path(found).name})"

    def version(self) -> str | None:
        import torch

        return torch.__version__

    def describe(self) -> dict[str, Any]:
        return {"torch": self.version(), "aoti_cxx": cxx_version()}

    def environment(self, backends):
        return {"aoti_cxx": cxx_version()} if self.name in backends else {}

    def timer_describe(self):
        return {**self.describe(), "aoti_layers": "torch eager"}

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

    def runner_for(self, module, example, threads, device="cpu"):
        """A runner of ``module`` compiled to a package at ``example``'s shape (latency tables' networks)."""
        with tempfile.TemporaryDirectory(prefix="compress-aoti-") as tmp:
            path = package(module, tuple(example.shape[1:]), Path(tmp) / "net.pt2", device=device,
                           max_batch=max(2, len(example)))
            return self.runner(path, module, example, threads, device)

    # ---------------------------------------------------------------- export
    def bench_files(self, module, onnx, folder, name, input_shape, max_batch, device, artifacts):
        """A package compiled for ``device`` unless the side has one for that device kind (``compress export``
        writes the CPU one; a package runs only where it was compiled)."""
        import torch

        if not self.available()[0]:
            return {}
        kind = torch.device(device).type
        found = artifacts.get(self.name)
        if found is not None and package_device(self.compiled(found, None)[1]) == kind:
            return {}
        folder.mkdir(exist_ok=True)
        return {self.name: package(module, tuple(input_shape), folder / f"{name}.{kind}.aoti.pt2", device=device,
                                   max_batch=max(MAX_BATCH, max_batch))}

    def export(self, job):
        model, folder, images, say_info = job.model, job.folder, job.images, job.say_info
        self.require()
        start = time.perf_counter()
        path = package(model, tuple(images.shape[1:]), folder / FP32_NAME)
        seconds = time.perf_counter() - start
        check = self.verify(path, model, images)
        record = {"aoti": {"path": path.name, "torch": self.version(), "device": "cpu", "compiler": cxx_version(),
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
    _require_space(net, path)  # a full disk aborts the C++ compiler (SIGABRT, no Python error): refuse before
    with tempfile.TemporaryDirectory(prefix=".compress-aoti-", dir=path.parent) as tmp:
        try:
            with torch.no_grad():
                program = torch.export.export(net, (example,),
                                              dynamic_shapes=({0: Dim("batch", min=1, max=int(max_batch))},))
                out = torch._inductor.aoti_compile_and_package(
                    program, package_path=str(Path(tmp) / "model.pt2"),
                    inductor_configs={"aot_inductor.metadata": meta})
        except Exception as err:
            failure = write_failure(err, path)
            if failure is not None:
                raise failure from None
            first = (str(err).strip().splitlines() or [""])[0][:300]
            raise ExportError(f"cannot compile {type(model).__name__} with AOTInductor: {type(err).__name__}: {first}",
                              "torch.export must capture the forward with a dynamic batch; or skip --format aoti") from err
        os.replace(out, path)
    return path


SPACE_MARGIN = 64 << 20  # the compiled library, its C++ sources and objects beside the weights


def _require_space(net, path: Path) -> None:
    """:class:`OutputError` (exit 8) unless the output's and the compiler cache's file systems have room for a
    package: its weights twice (the package and the build folder) plus :data:`SPACE_MARGIN`."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    weights = sum(t.numel() * t.element_size() for t in net.state_dict().values())
    needed = 2 * weights + SPACE_MARGIN
    for where in (path.parent, cache_dir()):
        failure = space_failure(where, path, needed)
        if failure is not None:
            raise failure


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

