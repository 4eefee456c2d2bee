"""Child process of :func:`export.memory.peak_rss_subprocess`: load one model, run it, report memory.

Run as ``python -m export.memory_probe '<json spec>'``; prints one JSON line on stdout. The runtime
(torch, onnxruntime, or a plugin of ``export.runtimes``) is imported first and the baseline read after that, so
``peak - baseline`` is what the model (weights, activations, session arenas) added.
The peak is read in this process (see :func:`max_rss_bytes`): the parent's ``RUSAGE_CHILDREN``
is the maximum over every child it ever waited for, not this one.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys


def max_rss_bytes() -> int:
    """This process's peak resident set size in bytes.

    Linux: ``VmHWM`` of ``/proc/self/status``, the high-water mark of this process's own memory.
    ``ru_maxrss`` is not used there: across fork+exec it keeps the parent's RSS at fork time (a
    pytest or CLI parent with torch loaded: ~1 GB), which would hide the model entirely.
    Elsewhere ``ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def load_callable(spec: str):
    """``"package.module:function"`` -> the function."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"loader must look like 'module:function', got {spec!r}")
    return getattr(importlib.import_module(module), name)


def probe(spec: dict) -> dict:
    import numpy as np

    backend, batch, shape = spec["backend"], int(spec["batch"]), tuple(spec["input_shape"])
    iters, threads, device = int(spec.get("iters", 3)), spec.get("threads"), spec.get("device", "cpu")
    x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
    gpu_peak = None
    if backend == "onnxruntime":
        import onnxruntime as ort

        baseline = max_rss_bytes()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or 1)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        session = ort.InferenceSession(spec["onnx_path"], sess_options=opts, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for _ in range(iters):
            session.run(None, {name: x})
    elif backend == "torch":
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        cuda = str(device).startswith("cuda")
        if cuda:
            torch.cuda.init()
        baseline = max_rss_bytes()
        loaded = load_callable(spec["loader"])(*spec.get("loader_args", []))
        model = getattr(loaded, "model", loaded).eval().to(device)
        xt = torch.from_numpy(x).to(device)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            for _ in range(iters):
                model(xt)
        if cuda:
            torch.cuda.synchronize()
            gpu_peak = int(torch.cuda.max_memory_allocated())
    else:  # a runtime plugin's file: its runtime imported first, then the baseline
        from compress.export.runtimes import get

        runtime = get(backend)
        runtime.import_runtime()
        baseline = max_rss_bytes()
        run = runtime.load(spec["onnx_path"], threads, batch=batch)
        for _ in range(iters):
            run(x)
        gpu_peak = _gpu_peak()
    return {"peak_rss_bytes": max_rss_bytes(), "baseline_rss_bytes": baseline, "gpu_peak_bytes": gpu_peak}


def _gpu_peak() -> int | None:
    """Peak CUDA memory torch's allocator handed out, when a runtime (an AOTInductor CUDA package) used it."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated())


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    print(json.dumps(probe(spec)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
