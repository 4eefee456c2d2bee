"""The transformer targets of issue 28 at the CLI's plan: per model, ``--ratio 0.3`` (heads and head widths
cut, ``num_heads`` of the cut model matching the plan) and ``--ratio 0.4`` with the LayerNorm-coupled width
opted in (``--prune-layernorm --prune-stem``; proved against the reference whose LayerNorms normalise over
the kept channels).

Same protocol as ``zoo_timm.py``: random weights (BatchNorm statistics fitted to random inputs), 10 classes, taylor-sq
on 4 random images, the CLI's defaults otherwise (round to 8, automatic caps). MACs are measured totals,
attention matmuls included. ONNX parity of the 0.3 cuts is in the zoo table.

    .venv/bin/python benchmarks/vit_ratios.py [--only NAME ...] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

MODELS = [("torchvision:vit_b_16", 224), ("torchvision:swin_t", 224), ("torchvision:maxvit_t", 224),
          ("timm:vit_tiny_patch16_224", 224), ("timm:deit_small_patch16_224", 224),
          ("timm:swin_tiny_patch4_window7_224", 224)]
HEAD_ATTRS = ("num_heads", "n_heads")


def one(spec: str, size: int, ratio: float, layernorm: bool) -> str:
    from zoo_timm import cut

    c = cut(spec, size, {}, 4, ratio, layernorm)
    if c.plan is None:
        from zoo_timm import _reasons

        return f"protected: {_reasons(c.groups)} | | | | | |"
    model, groups, plan, pruned, diff, (before, after) = c.model, c.groups, c.plan, c.pruned, c.proof, c.macs
    heads_cut, mismatched = 0, []
    for key, (was, now) in plan.widths.items():
        name, role = key.rsplit(":", 1)
        if role != "heads":
            continue
        heads_cut += was != now
        module = pruned.get_submodule(name)
        attr = next((a for a in HEAD_ATTRS if hasattr(module, a)), None)
        if attr is None or getattr(module, attr) != now:
            mismatched.append(f"{name}.{attr}={getattr(module, attr, None)} (plan {now})")
    dims_cut = sum(1 for k, (was, now) in plan.widths.items() if k.endswith(":head_dim") and was != now)
    norms = {name for name, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)}
    embed = sum(1 for c in plan.cuts if c.name in norms)
    if layernorm and not embed:  # what kept every LayerNorm width
        from zoo_timm import _reasons

        embed = f"0 ({_reasons(groups)})"
    heads = "num_heads match" if not mismatched else "num_heads MISMATCH " + "; ".join(mismatched[:3])
    return (f"{after / before:.3f}x | {heads_cut} | {dims_cut} | {embed} | {heads} | {diff:.1e} | "
            f"{plan.max_layer_ratio:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [m for m in MODELS if not args.only or m[0] in args.only or m[0].split(":")[1] in args.only]
    print("| model | setting | MACs after/before | layers with heads cut | with head widths cut | LayerNorms cut "
          "| saved num_heads | proof max diff | cap |\n|---|---|---|---|---|---|---|---|---|", flush=True)
    for spec, size in models:
        for ratio, layernorm in ((0.3, False), (0.4, True)):
            start = time.perf_counter()
            try:
                line = one(spec, size, ratio, layernorm)
            except Exception as err:  # noqa: BLE001 - one line per model, the sweep goes on
                line = f"error: {type(err).__name__}: {' '.join(str(err).split())[:160]} | | | | | |"
            setting = f"--ratio {ratio}" + (" --prune-layernorm --prune-stem" if layernorm else "")
            print(f"| {spec} | {setting} | {line} ({time.perf_counter() - start:.0f} s) |", flush=True)


if __name__ == "__main__":
    main()
