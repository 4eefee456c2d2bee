"""The arithmetic a run trains in: float32, or autocast to bfloat16 / float16 where that is faster.

Weights, optimizer state and the loss stay float32 (autocast). bf16 against float32 on a CPU:
benchmarks/RESULTS.md, "Distillation defaults".
"""

from __future__ import annotations

import torch

from compress.recover.config import DistillConfig, DistillConfigError

NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}  # the summary's recover_precision; anything else: fp32


def cpu_bf16() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (oneDNN: AVX-512 BF16 or AMX); elsewhere bf16 is
    emulated and slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def amp_dtype(config: DistillConfig, dev: torch.device) -> torch.dtype | None:
    """CUDA ("auto"): bf16 where supported, else fp16. CPU ("auto"): bf16 where oneDNN runs it natively
    (AVX-512 BF16 / AMX), else float32 (None: no autocast)."""
    if config.amp == "off":
        return None
    if dev.type != "cuda":
        if config.amp == "fp16":
            raise DistillConfigError(f"amp='fp16' needs a CUDA device, got {dev}", "use amp='auto', 'bf16' or 'off'")
        if config.amp == "bf16" and not cpu_bf16():
            raise DistillConfigError("amp='bf16' on a CPU without native bfloat16 would be slower than float32",
                                     "use amp='auto' or 'off'")
        return torch.bfloat16 if config.amp == "bf16" or cpu_bf16() else None
    if config.amp == "fp16" or (config.amp == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def precision_name(dtype: torch.dtype | None) -> str:
    """"bf16", "fp16" or "fp32": what a run with autocast ``dtype`` (None: off) trained in."""
    return NAMES.get(dtype, "fp32")
