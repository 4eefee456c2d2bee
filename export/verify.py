"""Does an exported model compute what the PyTorch model computes?

Comparison is on the logits (the model's raw output, before any softmax), which is where export
bugs show: a softmax would squash large errors on confident inputs.

Tolerance. The pass threshold is ``atol * max(1, max|reference logits|)``: an absolute ``atol``
for logits of order one, relative to the largest logit beyond that, because float32 kernels that
sum in a different order (oneDNN vs MLAS) disagree in proportion to the magnitude of what they
sum. Top-1: every input must get the same class, except where the reference's best two logits lie
within that threshold of each other (a tie that the allowed numeric difference can legitimately
flip); ``top1_agreement`` always reports the raw fraction.

Deep networks. Where the plain threshold is exceeded, the model is run again in float64 and
PyTorch's own float32 error against it (``noise``, per output) is measured: an exporter that is right
differs from PyTorch's float32 by about the sum of two such errors, so the threshold becomes
``max(plain, NOISE_FACTOR * noise)`` and ``noise_floor`` records it. A wrong export (a missing channel,
a swapped weight) differs by far more than float32 rounding, and top-1 must still agree.

Models with several outputs (a tuple, a dict such as torchvision segmentation's ``{"out", "aux"}``) are
compared output by output, in the order the exporter flattens them (dict insertion order); each must
match within its own threshold. Top-1 is read on the first output along axis 1: per image for logits,
per pixel for dense maps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from compress.export.errors import VerificationError
from compress.util.modules import device_of, eval_mode, tensor_leaves

CHUNK = 64  # images per onnxruntime call
NOISE_FACTOR = 4.0  # threshold over PyTorch's own float32 error (vs float64): two such errors, with margin


@dataclass
class Verification:
    """Outcome of :func:`verify_onnx`."""

    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float  # fraction of inputs with the same arg-max class
    n: int
    passed: bool
    threshold: float  # the max-abs-diff threshold actually applied
    top1_mismatches: int  # disagreements that are not near-ties of the reference
    noise_floor: float | None = None  # PyTorch's float32 error vs float64 (first output), when it was measured

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Agreement:
    """Outcome of :func:`compare_sessions` (e.g. INT8 vs FP32): no pass/fail, just figures."""

    top1_agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def make_session(path: str | Path, providers: Sequence[str] | None = None, threads: int | None = None,
                 *, spinning: bool = False):
    """An onnxruntime session on ``providers`` (CPU by default), with all graph optimizations.

    ``threads`` fixes the intra-op thread count (sequential execution). Thread-pool spinning is
    off unless ``spinning=True``: with several sessions alive (interleaved timing), one session's
    idle workers spinning after a run steal cores from the next session's run; measured here
    (ResNet-20, batch 32, 2 threads, FP32 and INT8 sessions interleaved) p50 65 ms with spinning
    vs 24 ms without, and batch-1 p90 9 ms vs 1 ms, for +7 % at batch-1 p50.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), sess_options=opts, providers=list(providers or ["CPUExecutionProvider"]))


def run_session(session, inputs: np.ndarray | torch.Tensor) -> np.ndarray:
    """The session's one output for ``inputs``, in chunks that respect a fixed batch size (raises
    :class:`VerificationError` for a model with several outputs: comparing only the first would leave
    the others unchecked; :func:`run_session_all` returns them all)."""
    names = [o.name for o in session.get_outputs()]
    if len(names) != 1:
        raise VerificationError(f"the ONNX model has {len(names)} outputs {names}, not one tensor of logits",
                                "export a model whose forward returns one tensor")
    return run_session_all(session, inputs)[0]


def run_session_all(session, inputs: np.ndarray | torch.Tensor) -> list[np.ndarray]:
    """Every output for ``inputs`` (float64), in chunks that respect a fixed batch size."""
    x = _as_numpy(inputs)
    meta = session.get_inputs()[0]
    fixed = meta.shape[0] if isinstance(meta.shape[0], int) else None
    step = fixed or CHUNK
    outs = []
    for i in range(0, len(x), step):
        part = x[i:i + step]
        if fixed and len(part) != fixed:  # pad the tail of a static-batch model, drop the padding after
            pad = np.zeros((fixed - len(part),) + part.shape[1:], dtype=part.dtype)
            outs.append([o[:len(part)] for o in session.run(None, {meta.name: np.concatenate([part, pad])})])
        else:
            outs.append(session.run(None, {meta.name: part}))
    return [np.concatenate(parts).astype(np.float64) for parts in zip(*outs)]


def torch_logits(model: nn.Module, inputs: torch.Tensor | np.ndarray) -> np.ndarray:
    """Reference logits (the first output) of ``model`` in eval mode (its modes restored afterwards)."""
    return torch_outputs(model, inputs)[0]


def torch_outputs(model: nn.Module, inputs: torch.Tensor | np.ndarray) -> list[np.ndarray]:
    """Every output tensor of ``model`` in eval mode (flattened: dicts by insertion order), float64."""
    x = torch.as_tensor(inputs, dtype=torch.float32)
    device = device_of(model)
    outs = []
    with eval_mode(model), torch.inference_mode():
        for i in range(0, len(x), CHUNK):
            outs.append([t.detach().float().cpu().numpy() for t in tensor_leaves(model(x[i:i + CHUNK].to(device)))])
    return [np.concatenate(parts).astype(np.float64) for parts in zip(*outs)]


def verify_onnx(path: str | Path, model: nn.Module, inputs: torch.Tensor | np.ndarray, *, atol: float = 1e-4,
                providers: Sequence[str] | None = None, raise_on_fail: bool = True) -> Verification:
    """Run ``path`` in onnxruntime and ``model`` in PyTorch on ``inputs``; compare the logits.

    Raises :class:`VerificationError` (unless ``raise_on_fail=False``) when the max abs diff exceeds
    the threshold (see module docstring) or a top-1 class differs outside a near-tie.
    """
    if len(inputs) == 0:
        raise VerificationError("no inputs to verify the exported model on", "pass at least one image")
    refs = torch_outputs(model, inputs)
    gots = run_session_all(make_session(path, providers), inputs)
    if [g.shape for g in gots] != [r.shape for r in refs]:
        raise VerificationError(f"{Path(path).name}: output shapes {[g.shape for g in gots]} differ from PyTorch's "
                                f"{[r.shape for r in refs]}", "re-export the model")
    ref, got = refs[0], gots[0]
    thresholds = [float(atol * max(1.0, float(np.abs(r).max()) if r.size else 0.0)) for r in refs]
    diffs = [np.abs(g - r) for g, r in zip(gots, refs)]
    noise = None
    if not _within(diffs, thresholds):  # beyond the plain threshold: is it float32 rounding of a deep network?
        noise = _float32_noise(model, inputs, refs)
        thresholds = [max(t, NOISE_FACTOR * n) for t, n in zip(thresholds, noise)]
    threshold = thresholds[0]
    within = _within(diffs, thresholds)
    top_ref, top_got = ref.argmax(1), got.argmax(1)
    disagree = top_ref != top_got
    margin = _top2_margin(ref)
    mismatches = int(np.sum(disagree & (margin > threshold)))
    max_diff = max((float(d.max()) for d in diffs if d.size), default=0.0)
    diff = diffs[0]
    result = Verification(
        max_abs_diff=max_diff, mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        top1_agreement=float(1.0 - disagree.mean()), n=int(len(ref)),
        passed=bool(np.isfinite(max_diff) and within and mismatches == 0),
        threshold=threshold, top1_mismatches=mismatches, noise_floor=None if noise is None else noise[0],
    )
    if raise_on_fail and not result.passed:
        raise VerificationError(
            f"{Path(path).name} differs from the PyTorch model: max |diff| {max_diff:.3g} "
            f"(threshold {threshold:.3g}), top-1 agreement {result.top1_agreement:.1%} on {result.n} inputs",
            "the export is wrong; re-export (opset/exporter) or report the model",
        )
    return result


def check_logits(label: str, ref: np.ndarray, got: np.ndarray, *, atol: float = 1e-4,
                 raise_on_fail: bool = True) -> Verification:
    """Compare an exported model's logits ``got`` with PyTorch's ``ref`` (see the module docstring);
    ``label`` names the file in the error. Used for every runtime's files (``export.runtimes``)."""
    if got.shape != ref.shape:
        raise VerificationError(f"{label}: output shape {got.shape} differs from PyTorch's {ref.shape}",
                                "re-export the model")
    diff = np.abs(got - ref)
    threshold = float(atol * max(1.0, float(np.abs(ref).max())))
    top_ref, top_got = ref.argmax(1), got.argmax(1)
    disagree = top_ref != top_got
    margin = _top2_margin(ref)
    mismatches = int(np.sum(disagree & (margin > threshold)))
    max_diff = float(diff.max()) if diff.size else 0.0
    result = Verification(
        max_abs_diff=max_diff, mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        top1_agreement=float(1.0 - disagree.mean()), n=int(len(ref)),
        passed=bool(np.isfinite(max_diff) and max_diff <= threshold and mismatches == 0),
        threshold=threshold, top1_mismatches=mismatches,
    )
    if raise_on_fail and not result.passed:
        raise VerificationError(
            f"{label} differs from the PyTorch model: max |diff| {max_diff:.3g} "
            f"(threshold {threshold:.3g}), top-1 agreement {result.top1_agreement:.1%} on {result.n} inputs",
            "the export is wrong; re-export (opset/exporter) or report the model",
        )
    return result


def agreement(ref: np.ndarray, got: np.ndarray) -> Agreement:
    """Top-1 agreement and logit differences of ``got`` against the reference logits ``ref``."""
    diff = np.abs(ref - got)
    return Agreement(top1_agreement=float(np.mean(ref.argmax(1) == got.argmax(1))), max_abs_diff=float(diff.max()),
                     mean_abs_diff=float(diff.mean()), n=int(len(ref)))


def _within(diffs: list[np.ndarray], thresholds: list[float]) -> bool:
    return all(float(d.max()) <= t if d.size else True for d, t in zip(diffs, thresholds))


def _float32_noise(model: nn.Module, inputs, refs: list[np.ndarray]) -> list[float]:
    """Per output: max |PyTorch float32 - PyTorch float64| on ``inputs`` (a float64 copy of the model, on the CPU)."""
    import copy

    exact = copy.deepcopy(model).cpu().double()
    x = torch.as_tensor(_as_numpy(inputs)).double()
    outs = []
    with eval_mode(exact), torch.inference_mode():
        for i in range(0, len(x), CHUNK):
            outs.append([t.numpy() for t in tensor_leaves(exact(x[i:i + CHUNK]))])
    exact_refs = [np.concatenate(parts) for parts in zip(*outs)]
    return [float(np.abs(r - e).max()) if r.size else 0.0 for r, e in zip(refs, exact_refs)]


def compare_sessions(path_a: str | Path, path_b: str | Path, inputs: torch.Tensor | np.ndarray, *,
                     providers: Sequence[str] | None = None) -> Agreement:
    """Top-1 agreement and output differences of two ONNX models (``a`` is the reference).

    Every output is compared (a detector's raw network has class scores and box regressions): the top-1
    agreement is the first output's (argmax over axis 1: classes, or classes per location), the max and
    mean |diff| are over all outputs."""
    a = run_session_all(make_session(path_a, providers), inputs)
    b = run_session_all(make_session(path_b, providers), inputs)
    if [x.shape for x in a] != [x.shape for x in b]:
        raise VerificationError(f"{Path(path_b).name}: output shapes {[x.shape for x in b]} differ from "
                                f"{Path(path_a).name}'s {[x.shape for x in a]}", "compare two exports of the same model")
    first = agreement(a[0], b[0])
    if len(a) == 1:
        return first
    diffs = [np.abs(x - y) for x, y in zip(a, b) if x.size]
    return Agreement(top1_agreement=first.top1_agreement, max_abs_diff=max(float(d.max()) for d in diffs),
                     mean_abs_diff=float(np.mean(np.concatenate([d.ravel() for d in diffs]))), n=first.n)


def _top2_margin(logits: np.ndarray) -> np.ndarray:
    if logits.shape[1] < 2:
        return np.full(len(logits), np.inf)
    part = np.sort(logits, axis=1)
    return part[:, -1] - part[:, -2]


def _as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)
