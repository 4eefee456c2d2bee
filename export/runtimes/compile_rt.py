"""``torch.compile`` (Inductor) of the model itself, FP32, timed in the bench process: on CUDA with CUDA graphs
(``mode="reduce-overhead"``: one graph replay per call instead of one launch per kernel), on the CPU Inductor's
C++ kernels (default mode). Rows only: nothing is written, and the memory probe does not run it (it would
compile again in the child; the torch rows have the model's memory).

Each runner compiles a copy of the model for its fixed batch (``dynamic=False``); the compile happens in the
timing's warm-up calls, which are not timed (``export.latency``). CUDA graph outputs are overwritten by the
next replay, which timing never reads.
"""

from __future__ import annotations

from compress.export.runtimes.torch_rt import TorchRuntime

CUDA_MODE, CPU_MODE = "reduce-overhead", "default"


class TorchCompileRuntime(TorchRuntime):
    """The torch rows' model, sizes and devices (:class:`TorchRuntime`), run compiled."""

    name = "torch-compile"
    title = "torch.compile"
    memory = False
    memory_note = "not probed: torch.compile rows are compiled in the timing process (see the torch rows)"
    latency = False
    label_device = False
    optional = True
    env_labels = ()
    bench_hint = "CUDA graphs on a GPU; a C++ compiler"

    def available(self) -> tuple[bool, str]:
        from compress.export.runtimes.cxx import compiler

        found, reason = compiler()  # Inductor on the CPU needs a C++ compiler
        if found is None:
            return False, f"torch.compile needs a C++ compiler (set CXX or install g++): {reason}"
        return True, f"torch.compile (torch {self.version()})"

    def environment(self, backends):
        return {}

    def row_logits(self, model, artifact, images):
        return None  # compiled in the timing process only

    def describe(self):
        return {"torch": self.version(), "compile_mode_cuda": CUDA_MODE, "compile_mode_cpu": CPU_MODE}

    def runner(self, artifact, module, example, threads, device):
        return compiled_runner(module, example, device)


def compiled_runner(module, example, device: str):
    """A runner calling ``torch.compile`` of a copy of ``module`` on ``example`` (on ``device``) under inference
    mode; CUDA graphs on CUDA, each call synchronised so wall time covers the kernels."""
    import copy

    import torch

    dev = torch.device(device)
    net = copy.deepcopy(module).eval().to(dev)
    cuda = dev.type == "cuda"
    fn = torch.compile(net, mode=CUDA_MODE if cuda else CPU_MODE, dynamic=False, fullgraph=False)
    x = example.detach().to(dev, torch.float32).contiguous()

    def run() -> None:
        if cuda:
            torch.compiler.cudagraph_mark_step_begin()  # each call a new step: the previous outputs may be reused
        with torch.inference_mode():
            fn(x)
        if cuda:
            torch.cuda.synchronize(dev)

    return run
