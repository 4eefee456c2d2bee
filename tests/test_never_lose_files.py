"""Issue 24, one test per case: what a run may replace, write failures, labels, BatchNorm, pickles,
Ctrl-C and the smaller ones. Each checks the message, the exit code, that nothing partial was
written and that every input is byte-identical afterwards."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import torch

from tests.cli_helpers import run_cli
from tests.safety import fingerprint, leftovers


def prune_args(assets, out, *extra):
    return ["prune", assets / "ckpt.pt", "--arch", "digits", "--calib", assets / "calib", "--no-progress",
            "--round-to", "1", "-o", out, *extra]


# 1. --overwrite replaces only an earlier output or an empty folder
def test_overwrite_replaces_only_an_earlier_output_or_an_empty_folder(tiny_assets, tmp_path, capsys):
    before = fingerprint(tiny_assets)
    out = tmp_path / "out"
    assert run_cli(prune_args(tiny_assets, out, "--no-recover"), capsys)[0] == 0
    first = (out / "compress.json").read_text()
    code, _, err = run_cli(prune_args(tiny_assets, out, "--no-recover", "--ratio", "0.3", "--overwrite"), capsys)
    assert code == 0, err  # an earlier output: replaced
    assert (out / "compress.json").read_text() != first and not leftovers(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli(prune_args(tiny_assets, empty, "--no-recover", "--overwrite"), capsys)[0] == 0
    assert (empty / "compress.json").is_file()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, _, err = run_cli(prune_args(tiny_assets, mine, "--no-recover", "--overwrite"), capsys)
    assert code == 2 and "is not an earlier compress output" in err and "notes.txt" in err
    assert (mine / "notes.txt").read_text() == "keep me" and sorted(os.listdir(mine)) == ["notes.txt"]
    assert fingerprint(tiny_assets) == before and not leftovers(tmp_path)


def _mount_tmpfs(where: Path, options: str) -> bool:
    """Mount a small tmpfs at ``where``; False where this machine does not allow it (not root, no mount)."""
    try:
        return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


# 2. the output location is checked before anything is loaded
def test_unwritable_output_is_refused_before_loading(tiny_assets, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    if not _mount_tmpfs(ro, "ro,size=64k"):
        pytest.skip("cannot mount a read-only tmpfs here (needs root): /proc covers the probe in test_bad_input")
    try:
        before = fingerprint(tiny_assets)
        code, _, err = run_cli(prune_args(tiny_assets, ro / "out"), capsys)
        assert code == 8 and f"output {ro / 'out'} cannot be written" in err and "Read-only" in err, err
        assert "model:" not in err and os.listdir(ro) == [] and fingerprint(tiny_assets) == before
    finally:
        subprocess.run(["umount", str(ro)], check=False)


# 3. a full disk: one line naming the path, exit 8, nothing partial
def _assert_disk_full(code, err, where: Path, out: Path, what: str = "the disk is full"):
    assert code == 8, err
    assert "error: cannot write" in err and what in err and "Traceback" not in err, err
    assert not out.exists() and not leftovers(where), os.listdir(where)


def test_disk_full_on_a_small_tmpfs(tiny_assets, tmp_path, capsys):
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _mount_tmpfs(disk, "size=24k"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission); the injected ENOSPC test covers it")
    try:
        before = fingerprint(tiny_assets)
        code, _, err = run_cli(prune_args(tiny_assets, disk / "out", "--no-recover"), capsys)
        _assert_disk_full(code, err, disk, disk / "out")
        assert os.listdir(disk) == [] and fingerprint(tiny_assets) == before
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.parametrize("where", ["weights", "onnx", "permission"])
def test_disk_full_injected(tiny_assets, tmp_path, capsys, monkeypatch, where):
    """ENOSPC as the libraries raise it: safetensors' text-only error, and an OSError from the ONNX export;
    and EACCES (which root, running these tests, cannot get from chmod)."""
    if where == "weights":
        import safetensors.torch

        def full(*_a, **_k):
            raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                               'message: "No space left on device" })')

        monkeypatch.setattr(safetensors.torch, "save_file", full)
        extra = ()
    else:
        import compress.export.onnx

        def full(model, example, path, **_k):
            Path(path).write_bytes(b"half an onnx file")
            if where == "permission":
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(compress.export.onnx, "export_onnx", full)  # the ONNX runtime plugin imports it on use
        extra = ("--export", "onnx")
    before = fingerprint(tiny_assets)
    code, _, err = run_cli(prune_args(tiny_assets, tmp_path / "out", "--no-recover", *extra), capsys)
    _assert_disk_full(code, err, tmp_path, tmp_path / "out",
                      "permission denied" if where == "permission" else "the disk is full")
    assert str(tmp_path / "out") in err and fingerprint(tiny_assets) == before


def test_only_failures_to_write_the_output_become_output_errors(tmp_path):
    from compress.util.atomic import write_failure

    out = tmp_path / "out"
    assert write_failure(PermissionError(errno.EACCES, "Permission denied", "/etc/elsewhere"), out) is None
    assert write_failure(ValueError("a bug"), out) is None
    err = write_failure(OSError(errno.ENOSPC, "No space left on device", "/var/tmp/x"), out)
    assert err.exit_code == 8 and "the disk is full (at /var/tmp/x)" in str(err) and str(out) in str(err)
    assert "read-only" in str(write_failure(OSError(errno.EROFS, "Read-only file system", str(out / "a")), out))


# 4. a labels CSV naming a class the model does not have
def test_labels_with_a_class_the_model_lacks(tiny_assets, tmp_path, capsys):
    names = sorted(p.name for p in (tiny_assets / "calib").iterdir())
    labels = tmp_path / "labels.csv"
    labels.write_text("file,class_index\n" + "".join(f"{n},{99 if n == names[5] else 3}\n" for n in names))
    before = fingerprint(tiny_assets, labels)
    code, _, err = run_cli(prune_args(tiny_assets, tmp_path / "out", "--importance", "taylor", "--labels", labels),
                           capsys)
    assert code == 4, err
    assert f"labels CSV {labels} line 7 ({names[5]},99): class_index 99, but the model has 10 outputs" in err
    assert "importance:" not in err and not (tmp_path / "out").exists() and not leftovers(tmp_path)
    assert fingerprint(tiny_assets, labels) == before


# 5. re-estimated BatchNorm statistics only where held-out agreement does not fall
def _bn_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5)).eval()


def test_batchnorm_statistics_kept_only_when_agreement_does_not_fall():
    import copy

    from compress.recover.batchnorm import recalibrate_batchnorm, recalibrate_if_better

    images, holdout = torch.randn(128, 3, 8, 8), torch.randn(200, 3, 8, 8)
    original = _bn_net()
    recalibrate_batchnorm(original, images)  # statistics that fit these images
    stale = copy.deepcopy(original)
    stale[1].running_mean.add_(3.0)  # what removing channels upstream does to them
    out = recalibrate_if_better(stale, original, images, holdout, held_out=200)
    assert out["bn_recalibrated"] == 1 and out["agreement_recalibrated"] >= out["agreement_pruned"]
    assert "re-estimated" in out["bn_note"] and "too few" not in out["bn_note"]
    same = copy.deepcopy(original)  # nothing wrong with them, but re-estimated on other images they get worse
    saved = same[1].running_mean.clone(), same[1].running_var.clone()
    out = recalibrate_if_better(same, original, images * 0.01, holdout[:20], held_out=20)
    assert out["bn_recalibrated"] == 0 and out["bn_rejected"]["agreement"] < out["agreement_pruned"] == 1.0
    assert "kept the original BatchNorm statistics" in out["bn_note"] and "only 20 held-out images" in out["bn_note"]
    assert torch.equal(same[1].running_mean, saved[0]) and torch.equal(same[1].running_var, saved[1])


def test_prune_says_why_it_kept_stale_batchnorm_statistics(tiny_assets, tmp_path, capsys, monkeypatch):
    import compress.recover.batchnorm as bn

    real = bn.recalibrate_batchnorm
    # re-estimate on shifted images: the statistics get worse, so the run must keep the stale ones
    monkeypatch.setattr(bn, "recalibrate_batchnorm", lambda model, images, **k: real(model, images * 5 + 3, **k))
    code, stdout, err = run_cli(prune_args(tiny_assets, tmp_path / "out", "--no-recover", "--json"), capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["bn_recalibrated"] == 0 and "bn_rejected" in summary and "agreement_recalibrated" not in summary
    assert "warning: batchnorm: kept the original BatchNorm statistics" in err and "too few to judge" in err
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["bn_note"] == summary["bn_note"]


# 6. an output pruned from a trusted pickle reloads on its own
def test_output_of_a_pickled_module_reloads_without_the_pickle(tiny_assets, tmp_path, capsys):
    from compress.archs.digits import digitnet
    from compress.models.loading import load_model

    model = digitnet()
    model.load_state_dict(torch.load(tiny_assets / "ckpt.pt"))
    pickle = tmp_path / "whole.pt"
    torch.save(model, pickle)
    out = tmp_path / "out"
    code, _, err = run_cli(["prune", pickle, "--trust", "--calib", tiny_assets / "calib", "--no-recover",
                            "--no-progress", "--preset", "cifar", "-o", out], capsys)
    assert code == 0, err
    x = torch.randn(3, 3, 32, 32)
    expected = load_model(out, trust=True).model(x)
    pickle.rename(tmp_path / "moved.pt")  # the original is gone
    code, stdout, err = run_cli(["inspect", out, "--json"], capsys)  # and no --trust either
    assert code == 0, err
    assert torch.allclose(load_model(out).model(x), expected, atol=1e-5)
    assert (out / "model.pt2").is_file() and json.loads((out / "compress.json").read_text())["program"] == "model.pt2"
    code, _, err = run_cli(["export", out, "--format", "onnx", "--calib", tiny_assets / "calib"], capsys)
    assert code == 0 and "matches PyTorch" in err, err  # the program is run in eval mode, as exported


# 7. the smaller ones
def _interrupt_distillation_at(monkeypatch, step: int, *, nan: bool = False):
    from compress.tasks.classify import ClassifyTask

    real, calls = ClassifyTask.distill_loss, []

    def loss(self, s, t, temperature):
        calls.append(1)
        if nan:
            return real(self, s, t, temperature) * float("nan")
        if len(calls) == step:
            raise KeyboardInterrupt
        return real(self, s, t, temperature)

    monkeypatch.setattr(ClassifyTask, "distill_loss", loss)  # the training steps' loss (held-out checks use meters)


def test_ctrl_c_during_recovery_keeps_the_weights_and_exits_9(tiny_assets, tmp_path, capsys, monkeypatch):
    _interrupt_distillation_at(monkeypatch, 3)
    code, _, err = run_cli(prune_args(tiny_assets, tmp_path / "out", "--recover-steps", "6"), capsys)
    assert code == 9, err
    assert "error: recovery interrupted at step 3: wrote" in err and "best weights seen" in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["recover_stopped"] == "interrupted at step 3" and not leftovers(tmp_path)
    assert run_cli(["inspect", tmp_path / "out"], capsys)[0] == 0


def test_recovery_that_cannot_run_exits_7_and_writes_nothing(tiny_assets, tmp_path, capsys, monkeypatch):
    _interrupt_distillation_at(monkeypatch, 0, nan=True)
    code, stdout, err = run_cli(prune_args(tiny_assets, tmp_path / "out", "--recover-steps", "6", "--json"), capsys)
    assert code == 7 and "recovery cannot run: non-finite loss at step 1" in err, err
    assert json.loads(stdout)["exit_code"] == 7
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


def test_weights_are_written_with_the_same_mode_as_the_other_files(tiny_assets, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(prune_args(tiny_assets, out, "--no-recover"), capsys)[0] == 0
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    expected = 0o666 & ~_umask()
    assert modes["model.safetensors"] == modes["compress.json"] == expected, modes


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_prune_help_states_the_default_target(capsys):
    code, stdout, _ = run_cli(["prune", "--help"], capsys)
    assert code == 0 and "ratio 0.5" in " ".join(stdout.split())


def test_padding_warning_suggests_round_to_only_where_it_helps():
    from compress.run.deploy import padding_advice
    from compress.export.widths import misaligned_widths
    from compress.layers.registry import output_width

    assert "--round-to 8" in padding_advice(3) and "--round-to" not in padding_advice(8)
    assert "classifier" in padding_advice(8) and "the model's own" in padding_advice(None)
    from compress.archs.digits import digitnet

    assert [w for _, w in misaligned_widths(digitnet(), width_of=output_width)] == [10]  # the classifier: nothing pruning can do


def test_bench_of_unrelated_models_says_so(tiny_assets, tmp_path, capsys):
    other = tmp_path / f"other-{uuid.uuid4().hex[:6]}.pt"
    shutil.copy(tiny_assets / "ckpt.pt", other)
    pruned = tmp_path / "pruned"
    assert run_cli(["prune", other, "--arch", "digits", "--calib", tiny_assets / "calib", "--no-recover",
                    "--no-progress", "-o", pruned], capsys)[0] == 0
    before = fingerprint(tiny_assets, pruned)
    code, stdout, err = run_cli(["bench", tiny_assets / "ckpt.pt", pruned, "--arch", "digits", "--backend", "torch",
                                 "--batch", "1", "--iters", "2", "--warmup", "1", "--min-seconds", "0", "--no-memory",
                                 "--device", "cpu", "-o", tmp_path / "report", "--json"], capsys)
    assert code == 0, err
    report = json.loads(stdout)
    assert "was not pruned from A" in err and "B was not pruned from A" in report["note"]
    assert [m["name"] for m in report["models"]] == ["A", "B"]
    assert fingerprint(tiny_assets, pruned) == before


def test_ctrl_c_before_recovery_exits_130_and_writes_nothing(tiny_assets, tmp_path, capsys, monkeypatch):
    import compress.prune.phases

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(compress.prune.phases, "estimate", interrupted)  # where the importance phase looks it up
    code, stdout, err = run_cli(prune_args(tiny_assets, tmp_path / "out", "--json"), capsys)
    assert code == 130 and "interrupted" in err and json.loads(stdout)["exit_code"] == 130
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)


def test_every_exit_code_is_documented_and_has_its_error():
    """docs/troubleshooting.md's table == compress.errors.EXIT_CODES == the codes the error classes carry (+ 0, 1 and 130);
    the tests above and in test_bad_input raise each of 2, 4, 7, 8, 9 and 130 (3, 5, 6: the loader,
    export and graph tests)."""
    import re

    from compress.calibrate.errors import CalibrationError
    from compress.errors import EXIT_CODES, CompressError
    from compress.export.errors import ExportError

    page = (Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md").read_text()
    documented = {int(code) for code in re.findall(r"^\| (\d+) \| ", page, re.M)}
    assert documented == set(EXIT_CODES)

    def codes(cls):
        return {cls.exit_code} | {c for sub in cls.__subclasses__() for c in codes(sub)}

    assert codes(CompressError) | {CalibrationError.exit_code, ExportError.exit_code, 0, 130} == documented
