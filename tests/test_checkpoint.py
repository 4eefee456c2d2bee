"""Every checkpoint format a user may bring, and every way one can be wrong."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from compress.archs.digits import digitnet
from compress.models.checkpoint import (
    EMA_KEYS,
    PLAIN_KEYS,
    extract_state_dict,
    find_state_dict,
    load_weights,
    read_checkpoint,
)
from compress.cli.main import main
from compress.errors import ArchError, CheckpointError, UsageError
from compress.models.loading import load_for_bench, load_model

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
R20 = SHARED / "models" / "resnet20-cifar10.th"


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = digitnet().eval()
    with torch.no_grad():  # make BN statistics non-trivial so a wrong load would show
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def same_output(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> bool:
    with torch.no_grad():
        return torch.allclose(a(x), b(x), atol=1e-6)


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


# --- formats that must load -------------------------------------------------------------------


def test_bare_state_dict(tmp_path, net, x):
    path = tmp_path / "sd.pt"
    torch.save(net.state_dict(), path)
    loaded = load_model(path, arch="digits")
    assert loaded.spec.kind == "state_dict"
    assert loaded.spec.arch == "compress.archs.digits:digitnet"
    assert loaded.spec.input_size == (3, 32, 32)  # the arch module's PREPROCESS = "cifar"
    assert loaded.size_bytes == path.stat().st_size
    assert not loaded.model.training
    assert same_output(loaded.model, net, x)


@pytest.mark.parametrize("key", PLAIN_KEYS + EMA_KEYS)
def test_each_wrapper_key(tmp_path, net, x, key):
    path = tmp_path / "wrapped.pt"
    torch.save({key: net.state_dict(), "epoch": 7, "best_acc1": 0.9}, path)
    notes: list[str] = []
    loaded = load_model(path, arch="digits", on_note=notes.append)
    assert same_output(loaded.model, net, x)
    assert any(f"[{key!r}]" in n for n in notes), notes


def test_plain_weights_win_over_ema_unless_asked(net):
    plain = net.state_dict()
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in plain.items()}
    ckpt = {"model_ema": ema, "state_dict": plain}
    sd, where = find_state_dict(ckpt, "c.pt")
    assert where == "checkpoint['state_dict']"
    assert torch.equal(sd["fc.weight"], plain["fc.weight"])
    sd, where = find_state_dict(ckpt, "c.pt", prefer_ema=True)
    assert where == "checkpoint['model_ema']"
    assert torch.equal(sd["fc.weight"], ema["fc.weight"])


def test_nested_and_unknown_wrapper_keys(net):
    nested = {"checkpoint": {"model": {"state_dict": net.state_dict()}}, "step": 3}
    sd, where = find_state_dict(nested, "n.pt")
    assert where == "checkpoint['checkpoint']['model']['state_dict']"
    assert set(sd) == set(net.state_dict())
    sd, where = find_state_dict({"my_weights": net.state_dict(), "lr": 0.1}, "u.pt")
    assert where == "checkpoint['my_weights']"


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "model.", "module._orig_mod."])
def test_wrapper_prefix_stripped(tmp_path, net, x, prefix):
    path = tmp_path / "p.pt"
    torch.save({"state_dict": {prefix + k: v for k, v in net.state_dict().items()}}, path)
    notes: list[str] = []
    loaded = load_model(path, arch="digits", on_note=notes.append)
    assert same_output(loaded.model, net, x)
    assert "stripped" in notes[0]


def test_model_whose_own_keys_start_with_model(net, x):
    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = digitnet()

        def forward(self, t):
            return self.model(t)

    target = Wrapper().eval()
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    load_weights(target, extract_state_dict(state, "w.pt"), "w.pt")  # stripped, then re-aligned
    assert same_output(target, net, x)


def test_legacy_non_zip_file(tmp_path, net, x):
    path = tmp_path / "legacy.pth"
    torch.save({"state_dict": net.state_dict()}, path, _use_new_zipfile_serialization=False)
    with open(path, "rb") as handle:
        assert handle.read(2) != b"PK"  # really the legacy format
    assert same_output(load_model(path, arch="digits").model, net, x)


def test_missing_num_batches_tracked_is_tolerated(tmp_path, net, x):
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pt"
    torch.save(state, path)
    assert same_output(load_model(path, arch="digits").model, net, x)


@pytest.mark.shared
def test_real_cuda_saved_legacy_checkpoint():
    """The shared ResNet-20: legacy non-zip, tensors saved on CUDA, `module.` keys, `best_prec1`."""
    if not R20.is_file():
        pytest.skip(f"shared data not found at {SHARED}")
    from compress.calibrate.preprocess import Preprocess
    from PIL import Image

    loaded = load_model(R20, arch="cifar_resnet20")
    assert sum(p.numel() for p in loaded.model.parameters()) == 269722
    assert all(p.device.type == "cpu" for p in loaded.model.parameters())
    pre = Preprocess.from_dict(loaded.spec.preprocess)
    eval_dir = SHARED / "data" / "cifar10" / "eval"
    classes = sorted(p.name for p in eval_dir.iterdir() if p.is_dir())
    xs, ys = [], []
    for ci, cls in enumerate(classes):
        for f in sorted((eval_dir / cls).iterdir())[:10]:
            with Image.open(f) as im:
                xs.append(pre(im))
            ys.append(ci)
    with torch.no_grad():
        acc = (loaded.model(torch.stack(xs)).argmax(1) == torch.tensor(ys)).float().mean().item()
    assert acc >= 0.6, acc  # 81 % on the full eval set; random weights would give about 10 %


def test_pickled_module_needs_trust(tmp_path, net, x, capsys):
    path = tmp_path / "whole.pt"
    torch.save(net, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert "holds pickled Python objects" in str(err.value)
    assert "loading it runs code" in str(err.value)
    assert "--trust" in err.value.hint
    code, out, msg = run_cli(["inspect", str(path)], capsys)
    assert code == 3 and out == ""
    assert msg.startswith(f"error: {path} holds pickled Python objects")
    assert "pass --trust if you trust the file, or save a state_dict" in msg

    loaded = load_model(path, trust=True)
    assert loaded.spec.kind == "pickle"
    assert loaded.spec.input_size == (3, 32, 32)  # from the pickled class's module PREPROCESS
    assert same_output(loaded.model, net, x)


def test_trusted_dict_with_python_objects(tmp_path, net, x):
    import argparse

    path = tmp_path / "train.pt"
    torch.save({"state_dict": net.state_dict(), "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointError, match="argparse.Namespace"):
        load_model(path, arch="digits")
    assert same_output(load_model(path, arch="digits", trust=True).model, net, x)


def test_exported_program(tmp_path, net, x):
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros(1, 3, 32, 32),)), path)
    loaded = load_model(path)
    assert loaded.spec.kind == "export"
    assert loaded.spec.input_size == (3, 32, 32)  # read from the program's input shape
    assert same_output(loaded.model, net, x[:1])


def test_safetensors(tmp_path, net, x):
    from safetensors.torch import save_file

    path = tmp_path / "net.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    loaded = load_model(path, arch="digits")
    assert loaded.spec.kind == "state_dict"
    assert same_output(loaded.model, net, x)


def test_load_for_bench_from_spec_json(tmp_path, net, x):
    ckpt = tmp_path / "sd.pt"
    torch.save(net.state_dict(), ckpt)
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(load_model(ckpt, arch="digits").spec.to_dict()))
    assert same_output(load_for_bench(str(spec_path)), net, x)
    with pytest.raises(CheckpointError, match="neither a compress output folder nor a spec.json"):
        load_for_bench(str(ckpt))


# --- bad inputs ---------------------------------------------------------------------------------


def test_random_bytes(tmp_path, capsys):
    path = tmp_path / "noise.pt"
    path.write_bytes(os.urandom(4096))
    code, out, msg = run_cli(["inspect", str(path), "--arch", "digits"], capsys)
    assert code == 3 and out == ""
    assert msg.startswith(f"error: {path} is corrupt or not a PyTorch checkpoint")
    assert msg.count("\n") == 1  # one line


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_file(tmp_path, net, legacy):
    path = tmp_path / "cut.pt"
    torch.save(net.state_dict(), path, _use_new_zipfile_serialization=not legacy)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"^{path} is truncated") as err:
        read_checkpoint(path)
    assert err.value.exit_code == 3


def test_empty_and_missing_and_folder(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"is empty \(0 bytes\)"):
        read_checkpoint(empty)
    with pytest.raises(CheckpointError, match=r"nope\.pt does not exist"):
        load_model(tmp_path / "nope.pt", arch="digits")
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file"):
        load_model(tmp_path)


def test_corrupt_exported_program_and_safetensors(tmp_path, net, caplog):
    good = tmp_path / "good.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros(1, 3, 32, 32),)), good)
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match=rf"^{bad} is not a loadable torch.export program"):
        read_checkpoint(bad)
    assert not [r for r in caplog.records if r.name.startswith("torch.export")]  # torch's traceback kept quiet
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match=rf"^{bad_st} is corrupt or not a PyTorch checkpoint \(SafetensorError"):
        read_checkpoint(bad_st)


def test_no_state_dict_inside(tmp_path):
    path = tmp_path / "meta.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(CheckpointError, match=r"found no state_dict inside \(top-level keys: 'epoch', 'lr'\)"):
        load_model(path, arch="digits")


def test_missing_arch_for_state_dict(tmp_path, net, capsys):
    path = tmp_path / "sd.pt"
    torch.save(net.state_dict(), path)
    code, out, msg = run_cli(["inspect", str(path)], capsys)
    assert code == 3
    assert f"error: {path} is a state_dict (weights only, no model class): name its architecture with --arch" in msg
    assert "torchvision:resnet18" in msg and "path/to/file.py:factory" in msg


def test_shape_mismatch_num_classes(tmp_path, net, capsys):
    path = tmp_path / "sd.pt"
    torch.save(net.state_dict(), path)
    code, _, msg = run_cli(["inspect", str(path), "--arch", "digits", "--arch-kwargs", "num_classes=7"], capsys)
    assert code == 3
    assert "does not fit --arch compress.archs.digits:digitnet" in msg
    assert "shape mismatches (2): fc.weight: checkpoint (10, 64) vs model (7, 64), fc.bias: checkpoint (10,) vs model (7,)" in msg
    assert "(check --arch / --arch-kwargs (e.g. num_classes))" in msg


def test_key_mismatch_is_listed_and_truncated(tmp_path, net):
    state = dict(net.state_dict())
    for k in [k for k in state if k.startswith("block.")]:
        state["extra." + k] = state.pop(k)
    with pytest.raises(CheckpointError) as err:
        load_weights(digitnet(), state, "k.pt", arch="digits")
    text = str(err.value)
    assert "missing keys (10): block.conv1.weight" in text  # num_batches_tracked filled in
    assert "unexpected keys (12): extra.block.conv1.weight" in text
    assert "… and 6 more; unexpected" in text and text.endswith("… and 8 more (check --arch / --arch-kwargs (e.g. num_classes))")
    assert "\n" not in text


def test_wrong_arch_entirely(tmp_path, net):
    path = tmp_path / "sd.pt"
    torch.save(net.state_dict(), path)
    with pytest.raises(CheckpointError, match="no checkpoint key matches"):
        load_model(path, arch="cifar_resnet20")


@pytest.mark.parametrize(
    "arch, message",
    [
        ("torchvision:resnet181", "torchvision has no model 'resnet181'; did you mean resnet18"),
        ("compress.archs.digitz:digitnet", "no module named 'compress.archs.digitz'; did you mean compress.archs.digits"),
        ("no/such/file.py:net", "file no/such/file.py does not exist"),
    ],
)
def test_wrong_arch_cli(tmp_path, net, capsys, arch, message):
    path = tmp_path / "sd.pt"
    torch.save(net.state_dict(), path)
    code, out, msg = run_cli(["inspect", str(path), "--arch", arch], capsys)
    assert code == ArchError.exit_code == 3
    assert message in msg, msg


def test_arch_kwargs_without_arch(tmp_path, net):
    path = tmp_path / "sd.pt"
    torch.save(net.state_dict(), path)
    with pytest.raises(UsageError, match="--arch-kwargs needs --arch"):
        load_model(path, arch_kwargs={"num_classes": 10})
