"""The timm and torchvision zoo at --ratio 0.3: per model, a sound cut that reloads and exports
to ONNX with parity, or one line saying what is protected and why.

Random weights (BatchNorm statistics fitted to random inputs, ``common.fit_batchnorm_to_noise``: with
statistics drawn at random instead, deep nets such as efficientnetv2_rw_t amplified float32 rounding to
chaos, an ill-conditioning trained weights do not have), 10 classes, a small input
where the model allows it. Per model: trace -> groups -> taylor-sq importance on a few random
images -> plan (--ratio 0.3, the CLI's defaults: round to 8, automatic caps) -> surgery, proved
against the zeroed original -> rebuilt from the architecture by replaying the cuts and loading
the pruned state dict strictly (what `compress.artifacts.saved` does) -> ONNX export verified in
onnxruntime. MACs are the measured totals (attention matmuls included).

    .venv/bin/python benchmarks/zoo_timm.py [--only NAME ...] [--images 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from common import fit_batchnorm_to_noise  # noqa: E402

# (arch spec, input size, factory kwargs): light variants of >= 40 timm families, then torchvision
TIMM = [
    ("resnet18", 64, {}), ("resnet50d", 64, {}), ("resnext26ts", 64, {}), ("seresnext26d_32x4d", 64, {}),
    ("efficientnet_b0", 64, {}), ("mobilenetv2_100", 64, {}), ("mobilenetv3_large_100", 64, {}),
    ("mobilenetv4_conv_small", 64, {}), ("ghostnet_100", 64, {}), ("rexnet_100", 64, {}), ("regnetx_002", 64, {}),
    ("regnety_002", 64, {}), ("repvgg_a0", 64, {}), ("dla34", 64, {}), ("densenet121", 64, {}),
    ("cspresnet50", 64, {}), ("darknet17", 64, {}), ("mixnet_s", 64, {}), ("mnasnet_100", 64, {}),
    ("fbnetc_100", 64, {}), ("lcnet_050", 64, {}), ("hardcorenas_a", 64, {}), ("tinynet_e", 64, {}),
    ("semnasnet_050", 64, {}), ("skresnet18", 64, {}), ("vgg11_bn", 64, {}), ("nf_resnet26", 64, {}),
    ("gernet_s", 64, {}), ("selecsls42b", 64, {}), ("efficientnetv2_rw_t", 64, {}), ("resnest14d", 64, {}),
    ("convnext_atto", 64, {}), ("convnextv2_atto", 64, {}), ("edgenext_xx_small", 64, {}),
    ("efficientformer_l1", 224, {}), ("mobilevit_xxs", 64, {}), ("poolformer_s12", 64, {}), ("repvit_m0_9", 64, {}),
    ("fastvit_t8", 64, {}), ("levit_128s", 224, {}), ("vit_tiny_patch16_224", 224, {}),
    ("deit_small_patch16_224", 224, {}), ("swin_tiny_patch4_window7_224", 224, {}), ("maxvit_nano_rw_256", 256, {}),
]
TORCHVISION = [
    ("resnet18", 64), ("mobilenet_v3_large", 64), ("efficientnet_b0", 64), ("regnet_y_400mf", 64),
    ("shufflenet_v2_x0_5", 64), ("squeezenet1_1", 64), ("mnasnet0_5", 64), ("convnext_tiny", 64), ("alexnet", 64),
    ("vit_b_16", 224), ("swin_t", 224), ("maxvit_t", 224),
]


def build(spec: str, size: int, kwargs: dict):
    from compress.models.arch import resolve_arch

    extra = {"aux_logits": False, "init_weights": True} if spec in ("torchvision:googlenet", "torchvision:inception_v3") else {}
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = resolve_arch(spec, {"num_classes": 10, **kwargs, **extra}).eval()
    fit_batchnorm_to_noise(model, size)
    return model, torch.randn(2, 3, size, size)


@dataclass
class Cut:
    model: torch.nn.Module
    x: torch.Tensor
    groups: object  # compress.graph.groups.Groups
    plan: object | None = None  # compress.prune.plan.Plan; None: nothing prunable
    pruned: torch.nn.Module | None = None
    proof: float = 0.0  # the proof's max diff against the zeroed original
    macs: tuple[int, int] = (0, 0)  # measured before, after


def cut(spec: str, size: int, kwargs: dict, images: int, ratio: float = 0.3, layernorm: bool = False) -> Cut:
    """The model built as above, traced, scored (taylor-sq on ``images`` random images), planned at
    ``ratio`` with the CLI's defaults, cut and proved. ``layernorm``: --prune-layernorm --prune-stem."""
    from compress.prune.importance import ImportanceConfig
    from compress.prune.phases import channel_groups, cut_and_prove, score
    from compress.prune.plan import PrunePolicy, select
    from compress.prune.profile import count_macs

    model, x = build(spec, size, kwargs)
    policy = PrunePolicy(ratio=ratio, layernorm_widths=layernorm, prune_stem=layernorm)
    result = Cut(model, x, channel_groups(model, x, policy))
    if not result.groups.prunable_units:
        return result
    calib = torch.randn(images, 3, size, size, generator=torch.Generator().manual_seed(1))
    scores = score(result.groups, calib, ImportanceConfig(name="taylor-sq", progress=False, device="cpu"))
    result.plan = select(result.groups, scores.units, policy)
    proved = cut_and_prove(model, result.plan, x)
    result.pruned, result.proof = proved.model, proved.max_diff
    result.macs = count_macs(model, (3, size, size)), count_macs(result.pruned, (3, size, size))
    return result


def run(spec: str, size: int, kwargs: dict, images: int) -> str:
    from compress.export.onnx import export_onnx
    from compress.export.verify import verify_onnx
    from compress.models.arch import resolve_arch
    from compress.prune.surgery import apply_cuts

    c = cut(spec, size, kwargs, images)
    if c.plan is None:
        return f"protected: {_reasons(c.groups)}"
    groups, plan, pruned, x, diff, (before, after) = c.groups, c.plan, c.pruned, c.x, c.proof, c.macs
    rebuilt = apply_cuts(resolve_arch(spec, {"num_classes": 10, **kwargs}), plan.cuts)
    rebuilt.load_state_dict(pruned.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), pruned(x)), "the rebuilt model differs"
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(pruned, x, Path(tmp) / "m.onnx")
        check = verify_onnx(Path(tmp) / "m.onnx", pruned, x)
    heads = sum(1 for c in plan.cuts if c.role in ("heads", "head_dim"))
    note = f"{after / before:.3f}x  proof {diff:.1e}  onnx {check.max_abs_diff:.1e}" + (f"  attention cuts {heads}" if heads else "")
    if after / before > 0.85:
        note += f"  | limited by: {_reasons(groups)}"
    return f"{before / 1e6:9.1f}M {after / 1e6:9.1f}M  {note}"


def _reasons(groups) -> str:
    seen: dict[str, int] = {}
    for g in groups.protected_groups():
        for p in g.protected:
            if p.op in ("input", "output") or "stem" in p.why:
                continue
            key = f"{p.op}: {p.why}"
            seen[key] = seen.get(key, 0) + g.width
    top = sorted(seen.items(), key=lambda kv: -kv[1])[:2]
    return "; ".join(f"{k} ({n} ch)" for k, n in top) or "input/output/stem only"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--skip", nargs="*", default=[])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--part", default="0/1", help="K/N: every N-th model from the K-th (parallel runs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = [(f"timm:{n}", s, k) for n, s, k in TIMM] + [(f"torchvision:{n}", s, {}) for n, s in TORCHVISION]
    if args.only:
        models = [m for m in models if m[0] in args.only or m[0].split(":")[1] in args.only]
    models = [m for m in models if m[0] not in args.skip]
    k, n = map(int, args.part.split("/"))
    models = models[k::n]
    print(f"| model | input | MACs before | after | ratio, proof, ONNX parity / protected |\n|---|---|---|---|---|", flush=True)
    for spec, size, kwargs in models:
        start = time.perf_counter()
        try:
            line = run(spec, size, kwargs, args.images)
        except Exception as err:  # noqa: BLE001 - one line per model, the sweep goes on
            line = f"error: {type(err).__name__}: {' '.join(str(err).split())[:160]}"
        cells = line.split(None, 2) if line[0].isdigit() or line.lstrip()[0].isdigit() else ["", "", line]
        print(f"| {spec} | {size} | {cells[0]} | {cells[1]} | {cells[2]} ({time.perf_counter() - start:.0f} s) |",
              flush=True)


if __name__ == "__main__":
    main()
