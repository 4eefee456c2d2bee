"""Post-processing time of a detector, measured apart from its raw-output network.

``compress bench`` times the raw-output network (what is exported to ONNX); decoding and NMS are not in
it. This module times them separately, in torch on the CPU, on the raw outputs the network gives for the
timed input shape (random images, as the latency rows use):

- a network whose family decodes apart (``Family.postprocess``: the embedded DetDigitNet): decoding + NMS alone;
- another detector with a whole model (``raw.detector``): the whole detector (its transforms, network,
  decoding, NMS; ``Family.detections``), reported as such, beside the raw network's own time.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
import torch.nn as nn

from compress.detection.family import family_of

ITERS, WARMUP = 20, 2
BUDGET_S = 2.0  # at most this long per figure after the first 3 runs (a whole detector at batch 32 is slow)


def _p50(fn, iters: int = ITERS, warmup: int = WARMUP) -> float:
    for _ in range(warmup):
        fn()
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < iters and (len(times) < 3 or time.perf_counter() - began < BUDGET_S):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


@torch.inference_mode()
def postprocess_ms(module: nn.Module, input_shape, batch: int, iters: int = ITERS) -> dict[str, Any] | None:
    """``{"what", "batch", "p50_ms", "network_p50_ms"}`` of ``module``'s post-processing at ``batch``, or None
    when it is not a detector compress can decode."""
    if not hasattr(module, "detector"):
        return None
    module = module.cpu().eval()
    x = torch.randn(batch, *input_shape)
    network = _p50(lambda: module(x), iters)
    family = family_of(module)
    if family is not None and family.postprocess is not None:
        raw = module(x)
        size = tuple(input_shape[-2:])
        ms, what = _p50(lambda: family.postprocess(module, raw, size), iters), "decode + NMS"
    else:
        images = (x - x.amin()) / (x.amax() - x.amin())  # the whole detector reads [0, 1] images
        whole = module.detector.eval()
        run = (lambda: family.detections(whole, images)) if family is not None else (lambda: whole(list(images)))
        ms, what = _p50(run, iters), "whole detector (transforms, network, decoding, NMS)"
    return {"what": what, "batch": batch, "p50_ms": round(ms, 3), "network_p50_ms": round(network, 3)}


def postprocess_note(name: str, figures: list[dict[str, Any]]) -> str:
    """One line for the report: what was timed apart, for one model at each batch."""
    parts = [f"batch {f['batch']}: {f['p50_ms']:.3f} ms (raw network {f['network_p50_ms']:.3f} ms)" for f in figures]
    return (f"{name}: post-processing ({figures[0]['what']}) is not in the timed raw-output network; "
            f"timed apart in torch on the CPU, p50 " + "; ".join(parts))


def postprocess_report(models: list[tuple[str, nn.Module]], input_shape, batches) -> tuple[dict, list[str]]:
    """(``{model name: [figures per batch]}``, one note per model) for the detectors among ``models``."""
    figures, notes = {}, []
    for name, module in models:
        rows = [f for f in (postprocess_ms(module, input_shape, b) for b in batches) if f is not None]
        if rows:
            figures[name] = rows
            notes.append(postprocess_note(name, rows))
    return figures, notes
