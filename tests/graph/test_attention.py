"""timm attention: whole heads and head width are pruned, proven against the zeroed original,
and the saved module's attributes follow the cut."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from compress.graph.analysis import analyze
from compress.graph.groups import build_groups
from compress.graph.trace import trace
from compress.prune.phases import channel_groups
from compress.prune.plan import PrunePolicy, plan_for_units
from compress.prune.profile import count_macs
from compress.prune.surgery import apply_cuts
from compress.prune.verify import max_difference, zeroed_reference

timm = pytest.importorskip("timm", reason="timm attention modules")


def _vit():
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=5, img_size=32, depth=2,
                              qkv_bias=True).eval()
    return model, torch.randn(2, 3, 32, 32)


def _units(groups, name, role):
    slot = groups.graph.slots[(name, role)]
    return sorted(set(groups.graph.roots(slot.ids).tolist()))


def _cut_and_prove(model, x, groups, removed):
    """Cut ``removed`` (none of them protected) and prove it: the pruned model computes the original with those
    channels zeroed, within float32 rounding of its output scale. Returns (plan, pruned)."""
    assert not any(groups.units[r].frozen for r in removed)
    plan = plan_for_units(groups, removed)
    pruned = apply_cuts(copy.deepcopy(model), plan.cuts)
    with torch.no_grad():
        scale = float(model(x).abs().max())
    assert max_difference(zeroed_reference(model, plan.cuts), pruned, x) <= 1e-5 * max(1.0, scale)
    return plan, pruned


@pytest.mark.parametrize("heads,dims", [(1, 0), (0, 3), (2, 5)])
def test_heads_and_head_width_cut_matches_zeroed_original(heads, dims):
    model, x = _vit()
    groups = channel_groups(model, x)
    removed = _units(groups, "blocks.0.attn", "heads")[:heads] + _units(groups, "blocks.1.attn", "head_dim")[:dims]
    plan, pruned = _cut_and_prove(model, x, groups, removed)
    a0, a1 = pruned.blocks[0].attn, pruned.blocks[1].attn
    assert a0.num_heads == 3 - heads and a0.qkv.out_features == 3 * a0.attn_dim == 3 * a0.num_heads * a0.head_dim
    assert a1.head_dim == 64 - dims and a1.proj.in_features == a1.num_heads * a1.head_dim
    assert a1.scale == pytest.approx(64 ** -0.5)  # the softmax scale stays the original's
    assert plan.macs_after == count_macs(pruned, (3, 32, 32)) <= plan.macs_before
    if heads or dims:
        assert plan.macs_after < plan.macs_before
    # a removed head really changes the unzeroed model (the proof can fail)
    if heads:
        with torch.no_grad():
            assert not torch.allclose(model(x), pruned(x), atol=1e-4)


def test_head_probe_scores_heads_and_dims():
    model, x = _vit()
    graph = analyze(trace(model, x))
    probe = next(p for p in graph.probes if p.module == "blocks.0.attn.norm")
    heads = graph.slots[("blocks.0.attn", "heads")].ids
    assert probe.ids.shape == (2, 3 * 64) and np.array_equal(np.unique(probe.ids[0]), heads)


def test_masked_attention_is_protected():
    model, x = _vit()

    class Masked(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = model.blocks[0].attn
            self.register_buffer("mask", torch.zeros(5, 5))

        def forward(self, t):
            return self.attn(t, attn_mask=self.mask)

    groups = build_groups(analyze(trace(Masked().eval(), torch.randn(2, 5, 192))))
    heads = groups.graph.slots[("attn", "heads")].ids
    assert all(groups.graph.sets.is_frozen(int(r)) for r in groups.graph.roots(heads))


def test_heads_are_ranked_among_heads():
    from compress.graph.groups import per_structure, structure_of

    model, x = _vit()
    groups = build_groups(analyze(trace(model, x)))
    kinds = {r: structure_of(groups, r) for r in groups.prunable_units}
    assert set(kinds.values()) == {"heads", "head_dim", "channels"}
    raw = {r: (100.0 if kinds[r] == "heads" else 1.0) * (1 + i % 3) for i, r in enumerate(groups.prunable_units)}
    ranked = per_structure(groups, raw)
    lowest_head = min(ranked[r] for r in ranked if kinds[r] == "heads")
    assert lowest_head <= max(ranked[r] for r in ranked if kinds[r] == "channels")  # heads compete now


def _torchvision_vit():
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=48,
                              num_classes=5).eval()
    return model, torch.randn(2, 3, 32, 32)


@pytest.mark.parametrize("heads,dims", [(1, 0), (0, 3), (2, 2)])
def test_multihead_attention_heads_and_width(heads, dims):
    from compress.graph.attention import PrunedMultiheadAttention

    model, x = _torchvision_vit()
    groups = channel_groups(model, x)
    graph = groups.graph
    assert not [p for p in graph.unknown_ops if "MultiheadAttention" in p.op]
    name = "encoder.layers.encoder_layer_0.self_attention"
    removed = _units(groups, name, "heads")[:heads] + _units(groups, name, "head_dim")[:dims]
    plan, pruned = _cut_and_prove(model, x, groups, removed)
    attn = pruned.encoder.layers[0].self_attention
    assert isinstance(attn, PrunedMultiheadAttention) and attn.num_heads == 4 - heads and attn.head_dim == 8 - dims
    assert attn.in_proj_weight.shape == (3 * attn.num_heads * attn.head_dim, 32) and attn.attn_scale == 8 ** -0.5
    assert plan.macs_after == count_macs(pruned, (3, 32, 32)) < plan.macs_before
    assert graph.static_scores  # heads scored by their weights (no module sees them)


@pytest.mark.parametrize("heads,dims", [(1, 0), (0, 3), (1, 2)])
def test_swin_window_attention_heads_and_bias_table(heads, dims):
    from timm.models.swin_transformer import SwinTransformer

    torch.manual_seed(0)
    model = SwinTransformer(img_size=32, patch_size=4, window_size=4, embed_dim=24, depths=(2,), num_heads=(3,),
                            num_classes=5).eval()
    for block in model.layers[0].blocks:
        block.attn.fused_attn = True  # the fused kernel must give way to keep the original scale
    x = torch.randn(2, 3, 32, 32)
    groups = channel_groups(model, x)
    name = "layers.0.blocks.1.attn"  # the shifted block: its mask is shared by all heads
    removed = _units(groups, name, "heads")[:heads] + _units(groups, name, "head_dim")[:dims]
    plan, pruned = _cut_and_prove(model, x, groups, removed)
    attn = pruned.layers[0].blocks[1].attn
    assert attn.num_heads == 3 - heads and attn.relative_position_bias_table.shape[1] == attn.num_heads
    assert attn.scale == pytest.approx(8 ** -0.5)
    assert plan.macs_after == count_macs(pruned, (3, 32, 32)) < plan.macs_before


def test_layernorm_width_opt_in_is_proved_against_kept_channel_statistics():
    model, x = _vit()
    groups = channel_groups(model, x, PrunePolicy(ratio=0.5, prune_stem=True))
    embed = next(g for g in groups.groups if "patch_embed.proj:out" in g.layers)
    assert embed.prunable == 0  # LayerNorm protects the embedding by default
    groups = channel_groups(model, x, PrunePolicy(ratio=0.5, prune_stem=True, layernorm_widths=True))
    graph = groups.graph
    embed = next(g for g in groups.groups if "patch_embed.proj:out" in g.layers)
    assert embed.prunable == 192 and "norm:chan" in embed.layers
    removed = sorted(set(graph.roots(graph.slots[("patch_embed.proj", "out")].ids).tolist()))[::3]
    plan = plan_for_units(groups, removed)
    pruned = apply_cuts(copy.deepcopy(model), plan.cuts)
    with torch.no_grad():
        scale = float(model(x).abs().max())
        changed = float((model(x) - pruned(x)).abs().max())
    assert pruned.norm.normalized_shape == (128,) and pruned.cls_token.shape[-1] == 128
    assert max_difference(zeroed_reference(model, plan.cuts), pruned, x) <= 1e-5 * max(1.0, scale)
    assert changed > 1e-3  # not a zeroing: the statistics changed, the reference follows them


def test_layernorm_opt_in_refuses_no_recover(tmp_path, capsys):
    from tests.cli_helpers import run_cli

    (tmp_path / "ckpt.pt").write_bytes(b"x")
    (tmp_path / "imgs").mkdir()
    code, _, err = run_cli(["prune", tmp_path / "ckpt.pt", "--calib", tmp_path / "imgs", "--prune-layernorm", "--no-recover",
                            "-o", tmp_path / "out"], capsys)
    assert code == 2 and "needs recovery" in err and not (tmp_path / "out").exists()


def _torchvision_window_models():
    from torchvision.models.maxvit import MaxVit
    from torchvision.models.swin_transformer import SwinTransformer

    torch.manual_seed(0)
    swin = SwinTransformer(patch_size=[4, 4], embed_dim=24, depths=[2], num_heads=[3], window_size=[3, 3],
                           num_classes=5).eval()  # 8x8 tokens: padded to 9x9 windows, the second block shifted
    maxvit = MaxVit(input_size=(32, 32), stem_channels=8, partition_size=2, block_channels=[16], block_layers=[1],
                    head_dim=4, stochastic_depth_prob=0.0, num_classes=5).eval()
    return {"swin": (swin, "features.1.1.attn", 3, 8, "num_heads"),
            "maxvit": (maxvit, "blocks.0.layers.0.layers.grid_attention.attn_layer.1", 4, 4, "n_heads")}


@pytest.mark.parametrize("kind", ["swin", "maxvit"])
@pytest.mark.parametrize("heads,dims", [(1, 0), (0, 3), (1, 2)])
def test_torchvision_window_attention_heads_and_bias_table(kind, heads, dims):
    """torchvision Swin (shifted_window_attention) and MaxViT relative attention: heads and head
    width cut, bias table sliced per head, attributes rewritten, original scale, reload and ONNX."""
    model, name, h, d, attr = _torchvision_window_models()[kind]
    x = torch.randn(2, 3, 32, 32)
    groups = channel_groups(model, x)
    assert not groups.graph.unknown_ops
    removed = _units(groups, name, "heads")[:heads] + _units(groups, name, "head_dim")[:dims]
    plan, pruned = _cut_and_prove(model, x, groups, removed)
    with torch.no_grad():
        assert not torch.allclose(model(x), pruned(x), atol=1e-5)  # the proof can fail: the cut changes outputs
    attn = pruned.get_submodule(name)
    assert getattr(attn, attr) == h - heads and attn.head_dim == d - dims
    assert attn.relative_position_bias_table.shape[1] == h - heads
    assert plan.macs_after == count_macs(pruned, (3, 32, 32)) < plan.macs_before
    rebuilt = apply_cuts(_torchvision_window_models()[kind][0], plan.cuts)  # what reloading a saved model does
    rebuilt.load_state_dict(pruned.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), pruned(x))
    import pickle

    with torch.no_grad():  # a user may torch.save the whole pruned module
        assert torch.equal(pickle.loads(pickle.dumps(pruned)).eval()(x), pruned(x))
    again = analyze(trace(pruned, x))  # a pruned model is still understood (prune it again)
    assert (name, "heads") in again.slots and not again.unknown_ops


def test_torchvision_window_attention_exports_to_onnx(tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX parity of the pruned window attention")
    from compress.export.onnx import export_onnx
    from compress.export.verify import verify_onnx

    for kind, (model, name, _, _, _) in _torchvision_window_models().items():
        x = torch.randn(1, 3, 32, 32)
        groups = build_groups(analyze(trace(model, x)))
        plan = plan_for_units(groups, _units(groups, name, "heads")[:1] + _units(groups, name, "head_dim")[:1])
        pruned = apply_cuts(copy.deepcopy(model), plan.cuts)
        export_onnx(pruned, x, tmp_path / f"{kind}.onnx")
        assert verify_onnx(tmp_path / f"{kind}.onnx", pruned, x).max_abs_diff < 1e-4


def test_swin_v2_window_attention_stays_protected():
    from torchvision.models.swin_transformer import SwinTransformer, SwinTransformerBlockV2, PatchMergingV2

    torch.manual_seed(0)
    model = SwinTransformer(patch_size=[4, 4], embed_dim=24, depths=[2], num_heads=[3], window_size=[4, 4],
                            num_classes=5, block=SwinTransformerBlockV2, downsample_layer=PatchMergingV2).eval()
    graph = analyze(trace(model, torch.randn(2, 3, 32, 32)))
    assert ("features.1.0.attn", "heads") not in graph.slots  # cosine attention: not handled, not guessed
    assert any("shifted_window_attention" in p.op for p in graph.unknown_ops)  # and reported


def test_digitvit_heads_and_mlp_are_prunable():
    """The small ViT benchmarks/vit_recovery.py trains: heads, head widths and MLP widths are all
    prunable structures (its embedding width is protected by its LayerNorms and attention)."""
    from compress.archs.digitvit import digitvit
    from compress.graph.groups import structure_of

    torch.manual_seed(0)
    groups = build_groups(analyze(trace(digitvit(layers=1).eval(), torch.randn(2, 3, 32, 32))))
    kinds = {structure_of(groups, r) for r in groups.prunable_units}
    assert kinds == {"heads", "head_dim", "channels"}
    assert ("encoder.layers.encoder_layer_0.mlp.0", "out") in groups.graph.slots
