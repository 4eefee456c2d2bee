"""What a runtime plugin answers: is it here, what does a model run from, and how is it run.

A runtime is one subclass of :class:`Runtime`. The callers:

* ``export.bench``: :meth:`Runtime.variants` (which (precision, artifact) rows a model has here),
  :meth:`Runtime.runner` (one timed call), :meth:`Runtime.size_key`, :meth:`Runtime.row_device`;
* ``export.memory_probe`` (a fresh process): :meth:`Runtime.load` (artifact -> a callable on numpy
  batches) after :meth:`Runtime.import_runtime`;
* ``export.layer_timing`` (latency tables): :meth:`Runtime.from_onnx` for runtimes that take ONNX
  (a one-layer ONNX model or the network's), :meth:`Runtime.describe` for the table's cache key;
* ``compress.run.deploy`` (``compress export``): :meth:`Runtime.export` writes and verifies the
  runtime's own files (ONNX, INT8 ONNX, engines, IR, ``.pte``...) from one :class:`ExportJob`;
  :meth:`Runtime.bench_files` writes the FP32 file a bench row needs when a model has none;
* the CLI and ``artifacts.names``: :attr:`Runtime.formats`, :attr:`Runtime.files`, :attr:`Runtime.hint` and the
  flags below (every list of formats, files and backends is derived from the registry, ``export.runtimes``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from compress.export.errors import RuntimeUnavailable

Runner = Callable[[], None]


@dataclass
class ExportJob:
    """One ``compress export``: what every runtime's :meth:`Runtime.export` reads, and the ONNX files the
    earlier ones wrote (the runtimes export in registry order; the one that writes ONNX comes first)."""

    model: Any  # the nn.Module, on the CPU, in eval mode
    folder: Path
    formats: Sequence[str]
    images: Any  # verification images (a tensor)
    calibration: Any  # INT8 calibration images (a tensor)
    int8_method: str = "minmax"
    target: str = "cpu"  # the INT8 ONNX model's quantization target (export.quantize.TARGETS)
    say_info: Callable = print
    say_warn: Callable = print
    onnx_path: Path | None = None  # model.onnx once written
    int8_onnx: Path | None = None  # model.int8.onnx once written


class Runtime:
    name = ""
    title = ""  # how people write it: "OpenVINO"
    package: str | None = None  # import name of the optional package (None: always there)
    extra: str | None = None  # pip extra that installs it: compress[extra]
    device = "cpu"  # where its rows run
    memory = True  # whether the memory probe can load its artifacts
    memory_note = ""  # the row's note when it cannot
    takes_onnx = False  # latency tables can give it ONNX models (from_onnx)
    latency = False  # a latency-table backend (compress prune --backend)
    layers_eager = False  # latency tables time its layers alone in eager torch (networks through runner_for)
    follows_device = False  # runs on --device (torch, CUDA packages); else on ``device``
    label_device = False  # report rows show its device next to its name ("torch cuda:0")
    optional = False  # asked for by name it must be installed (exit 5 naming the extra)
    files: dict[str, str] = {}  # artifact key (its name, "<name>.int8"...) -> file name in an output folder
    formats: Sequence[str] = ()  # `compress export --format` names it writes, in that order
    calibrated: Sequence[str] = ()  # those of its formats that need calibration images
    implies: dict[str, Sequence[str]] = {}  # a format -> other formats it is made from
    hint = ""  # what `--format`'s help says about its formats (an extra, a compiler)
    bench_hint = ""  # what `compress bench --backend`'s help says about it
    env_labels: Sequence[tuple[str, str]] = ()  # report.json environment keys and how the report line names them

    # ---------------------------------------------------------------- presence
    def available(self) -> tuple[bool, str]:
        """(True, "<Title> <version>") or (False, one-line reason naming the extra to install)."""
        if self.package is None:
            return True, f"{self.title or self.name} {self.version()}"
        try:
            importlib.import_module(self.package)
        except ImportError:
            return False, f"{self.title} is not installed (pip install 'compress[{self.extra}]')"
        except Exception as err:  # a broken install raises OSError and the like
            first = (str(err).splitlines() or [""])[0][:120]
            return False, f"{self.title} cannot be imported ({type(err).__name__}: {first})"
        return True, f"{self.title} {self.version()}"

    def require(self):
        """The runtime's package, or :class:`RuntimeUnavailable` saying which extra to install."""
        ok, reason = self.available()
        if not ok:
            raise RuntimeUnavailable(reason, f"{self.title} rows and files need the '{self.extra}' extra")
        return importlib.import_module(self.package) if self.package else None

    def version(self) -> str | None:
        if self.package is None:
            return None
        try:
            return str(importlib.import_module(self.package).__version__)
        except Exception:
            return None

    def describe(self) -> dict[str, Any]:
        """What figures measured on it depend on besides the machine (the latency table's key)."""
        return {self.name: self.version()} if self.package else {}

    def environment(self, backends: Sequence[str]) -> dict[str, Any]:
        """Its entries in a bench report's environment (the versions its rows were measured with): by default
        its version under each key of :attr:`env_labels`, when its rows ran."""
        return {key: self.version() for key, _ in self.env_labels} if self.name in backends else {}

    def timer_describe(self) -> dict[str, Any]:
        """What a latency table timed on it depends on (its cache key, beside the machine)."""
        return self.describe()

    # ---------------------------------------------------------------- bench rows
    def variants(self, model) -> tuple[list[tuple[str, Path | None]], list[str]]:
        """``([(precision, artifact path or None for the module)], [reasons a row is missing])``
        for a :class:`~compress.export.bench.BenchModel`."""
        rows, missing = [], []
        fp32, int8 = model.artifacts.get(self.name), model.artifacts.get(f"{self.name}.int8")
        if fp32 is not None:
            rows.append(("fp32", fp32))
        else:
            missing.append(f"no {self.title} file given")
        if int8 is not None:
            rows.append(("int8", int8))
        return rows, missing

    def file_size(self, path: Path) -> int:
        """Bytes of one of its files, with any parts it loads beside it (``export.sizes.artifact_size``)."""
        from compress.export.sizes import artifact_size

        return artifact_size(path)

    def size_key(self, precision: str) -> str:
        """The ``BenchModel.sizes`` key of the file a row of this precision runs from."""
        return self.name if precision == "fp32" else f"{self.name}.{precision}"

    def row_device(self, device: str) -> str:
        return self.device

    def runner(self, artifact: Path | None, module, example, threads: int, device: str) -> Runner:
        """A callable running one batch ``example`` (a torch tensor) through the artifact."""
        run = self.load(artifact, threads, batch=len(example))
        x = np.ascontiguousarray(example.detach().cpu().numpy(), dtype=np.float32)
        return lambda: run(x)

    def row_logits(self, model, artifact: Path | None, images) -> np.ndarray | None:
        """Logits of the file a bench row ran from on ``images`` (None: no file to run apart from the timing)."""
        return self.predict(artifact, _numpy(images))

    def wants_onnx(self, artifacts: dict) -> bool:
        """A bench side with these runtime ``artifacts`` needs its ONNX file for this runtime's rows."""
        return False

    def bench_files(self, module, onnx: Path | None, folder: Path, name: str, input_shape, max_batch: int,
                    device: str, artifacts: dict) -> dict[str, Path]:
        """FP32 files a bench side called ``name`` lacks for this runtime, written into ``folder``
        (its INT8 files come from ``compress export``, which has the calibration images)."""
        return {}

    # ---------------------------------------------------------------- running files
    def import_runtime(self) -> None:
        """Import what :meth:`load` needs (the memory probe reads its baseline after this)."""
        self.require()

    def load(self, artifact: Path, threads: int | None, batch: int | None = None) -> Callable[[np.ndarray], Any]:
        """A callable that runs a float32 numpy batch through ``artifact`` and returns its first output."""
        raise NotImplementedError(f"{self.name} cannot load files")

    def predict(self, artifact: Path, inputs: np.ndarray, chunk: int = 32) -> np.ndarray:
        """Float64 logits of ``artifact`` on all ``inputs`` (run in chunks)."""
        run = self.load(artifact, None, batch=chunk)
        x = np.ascontiguousarray(inputs, dtype=np.float32)
        return np.concatenate([np.asarray(run(x[i:i + chunk])) for i in range(0, len(x), chunk)]).astype(np.float64)

    def from_onnx(self, onnx_path: Path, example, threads: int) -> Runner:
        """A runner for an ONNX model (latency tables); the file may be deleted once this returns."""
        raise NotImplementedError(f"{self.name} does not run ONNX models")

    def runner_for(self, module, example, threads: int, device: str = "cpu") -> Runner:
        """A runner of an ``nn.Module`` (latency tables of runtimes that do not take ONNX)."""
        raise NotImplementedError(f"{self.name} does not run modules")

    # ---------------------------------------------------------------- export
    def exports(self, formats: Sequence[str]) -> bool:
        """Whether a ``compress export`` of ``formats`` calls :meth:`export`."""
        return bool(set(self.formats) & set(formats))

    def verify(self, artifact: Path, model, images, *, atol: float = 1e-4):
        """:class:`~compress.export.verify.Verification` of ``artifact`` against ``model`` in PyTorch on ``images``
        (raises :class:`~compress.export.errors.VerificationError` when it does not match)."""
        from compress.export.verify import check_logits, torch_logits

        ref = torch_logits(model, images)
        return check_logits(Path(artifact).name, ref, self.predict(artifact, _numpy(images)), atol=atol)

    def int8_figures(self, int8: Path, fp32: Path, model, images) -> dict[str, Any]:
        """Top-1 agreement of an INT8 file with its FP32 file and with the PyTorch model (no pass/fail)."""
        from compress.export.verify import agreement, torch_logits

        x = _numpy(images)
        got = self.predict(int8, x)
        return {"agreement_with_fp32": agreement(self.predict(fp32, x), got).to_dict(),
                "agreement_with_pytorch": agreement(torch_logits(model, images), got).to_dict()}

    def export(self, job: ExportJob) -> dict[str, Any]:
        """Write and verify its files into ``job.folder``; the figures recorded in ``export.json``, by format."""
        raise NotImplementedError(f"{self.name} writes no files")


def _numpy(images) -> np.ndarray:
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    return np.ascontiguousarray(images, dtype=np.float32)
