"""Bad input to ``export``, ``bench`` and the calibration folders, one row per case, checked like
``tests/test_bad_input.py``: exit code, one error line holding the fragment, no traceback, every input
byte-identical, nothing added and nothing partial left. ``{P}`` is a prune of the tiny checkpoint, ``{Q}``
another one (a different model), ``{tmp}`` a fresh folder. Then: export and bench interrupted half-way
leave nothing, and files exported from another model are refused by bench.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from compress.export.runtimes import get
from tests.cli_helpers import run_cli
from tests.safety import fingerprint, leftovers

B = "bench {P} --backend torch --batch 1 --iters 1 --warmup 0 --min-seconds 0 --no-memory"
CASES = [  # case, command, exit code, message fragment, early (before loading the model)
    ("bench --iters 0", B.replace("--iters 1", "--iters 0"), 2, "'--iters': 0 is not in the range x>=1", True),
    ("bench --threads 0", B + " --threads 0", 2, "'--threads': 0 is not in the range x>=1", True),
    ("bench --threads -3", B + " --threads -3", 2, "'--threads': -3 is not in the range x>=1", True),
    ("bench --warmup -1", B.replace("--warmup 0", "--warmup -1"), 2, "'--warmup': -1 is not in the range x>=0", True),
    ("bench --min-seconds -1", B.replace("--min-seconds 0", "--min-seconds -1"), 2, "'--min-seconds': -1.0 is not",
     True),
    ("bench --batch 10000000", B.replace("--batch 1", "--batch 1,10000000"), 2, "GiB of memory available", False),
    ("bench -o an earlier report", B + " -o {tmp}/report", 2, "already exists", True),
    ("bench -o a user's folder, --overwrite", B + " -o {tmp}/mine --overwrite", 2, "--overwrite would delete them", True),
    ("export -o another run's folder", "export {Q} --format onnx --calib {calib} -o {P}", 2,
     "is another run's folder", True),
    ("export -o another model's export", "export {P} --format onnx --calib {calib} -o {tmp}/exported", 2,
     "the export of another model", True),
    ("bench another model's model.onnx", "bench {tmp}/mixed --backend onnxruntime --batch 1 --iters 1 --warmup 0 "
     "--min-seconds 0 --no-memory -o {tmp}/r", 3, "its exported files belong to another model", False),
    ("--calib of 1 image, recovery on", "prune {ckpt} --arch digits --calib {tmp}/one --no-progress -o {tmp}/o", 4,
     "has 1 usable image: recovery trains on 1", False),
    ("--calib of 2 images, recovery on", "prune {ckpt} --arch digits --calib {tmp}/two --no-progress -o {tmp}/o", 4,
     "--calib {tmp}/two has 2 usable images", False),
    ("--calib with a symlink out of it", "prune {ckpt} --arch digits --calib {tmp}/linked --no-recover --no-progress "
     "-o {tmp}/o", 4, "outside the image folder", False),
]


@pytest.fixture(scope="module")
def runs(tiny_assets, tmp_path_factory):
    """Two prunes of the tiny checkpoint at different ratios (two models), and an export of the second."""
    from tests.test_bad_input import main_code

    tmp = tmp_path_factory.mktemp("deploy-runs")
    for name, ratio in (("P", "0.3"), ("Q", "0.5")):
        assert main_code(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                          "--no-recover", "--no-progress", "--ratio", ratio, "-o", tmp / name]) == 0
    assert main_code(["export", tmp / "Q", "--format", "onnx", "--calib", tiny_assets / "calib", "-o",
                      tmp / "Q-export"]) == 0
    return tmp


@pytest.fixture
def world(runs, tiny_assets, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my notes")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.json").write_text("{}")
    shutil.copytree(runs / "Q-export", tmp_path / "exported")
    mixed = tmp_path / "mixed"  # P's folder holding Q's export: a bench would time Q's file as P
    shutil.copytree(runs / "P", mixed)
    for name in ("model.onnx", "export.json"):
        shutil.copy(runs / "Q-export" / name, mixed / name)
    for name, count in (("one", 1), ("two", 2), ("linked", 3)):
        (tmp_path / name).mkdir()
        for image in sorted((tiny_assets / "calib").iterdir())[:count]:
            shutil.copy(image, tmp_path / name / image.name)
    (tmp_path / "linked" / "more").symlink_to(tiny_assets / "calib", target_is_directory=True)
    return {"P": runs / "P", "Q": runs / "Q", "ckpt": tiny_assets / "ckpt.pt", "calib": tiny_assets / "calib",
            "tmp": tmp_path, "runs": runs, "assets": tiny_assets}


@pytest.mark.parametrize("case, command, code, fragment, early", CASES, ids=[c[0] for c in CASES])
def test_bad_deploy_input(world, capsys, case, command, code, fragment, early):
    roots = [world["runs"], world["tmp"], world["assets"]]
    before = fingerprint(*roots)
    listing = sorted(str(p) for root in roots for p in Path(root).rglob("*"))
    got, _, err = run_cli(command.format(**world).split(), capsys)
    assert got == code, err
    assert fragment.format(**world) in err, err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.lower().startswith(("error:", "error: "))]) == 1, err
    if early:
        assert "model:" not in err, "checked only after the model was loaded"
    if code == 4:
        assert "graph:" not in err, "checked only after the graph was built"
    assert fingerprint(*roots) == before
    assert sorted(str(p) for root in roots for p in Path(root).rglob("*")) == listing
    assert not any(leftovers(root) for root in roots)


def test_follow_links_reads_through_the_link(world, capsys):
    code, _, err = run_cli(["prune", world["ckpt"], "--arch", "digits", "--calib", world["tmp"] / "linked",
                            "--follow-links", "--no-recover", "--no-progress", "-o", world["tmp"] / "o"], capsys)
    assert code == 0, err
    assert "calibration: 43 images" in err


def test_eval_sharing_calib_images_is_said(world, capsys):
    """The labelled folder given as --calib too: accepted, with a warning naming the count."""
    evald = world["assets"] / "eval"
    code, _, err = run_cli(["prune", world["ckpt"], "--arch", "digits", "--calib", evald, "--eval", evald,
                            "--no-recover", "--no-progress", "-o", world["tmp"] / "o"], capsys)
    assert code == 0, err
    assert f"warning: --eval {evald} shares 12 images with --calib {evald}" in err
    code, _, err = run_cli(["prune", world["ckpt"], "--arch", "digits", "--calib", world["calib"], "--eval", evald,
                            "--no-recover", "--no-progress", "-o", world["tmp"] / "o2"], capsys)
    assert code == 0 and "shares" not in err, err


def _interrupt_after(monkeypatch, runtime_name: str):
    """The runtime's export writes its files, then Ctrl-C arrives."""
    runtime = get(runtime_name)
    original = type(runtime).export

    def export_then_interrupt(self, job):
        original(self, job)
        raise KeyboardInterrupt

    monkeypatch.setattr(type(runtime), "export", export_then_interrupt)


@pytest.mark.parametrize("into", ["the pruned folder", "a new -o", "an earlier export"])
def test_an_interrupted_export_leaves_nothing(world, capsys, monkeypatch, into):
    folder = world["tmp"] / "P"
    shutil.copytree(world["P"], folder)
    out = {"the pruned folder": [], "a new -o": ["-o", world["tmp"] / "new"],
           "an earlier export": ["-o", world["tmp"] / "exported"]}[into]
    if into == "an earlier export":  # the same model's earlier export: allowed, and kept as it was on failure
        shutil.rmtree(world["tmp"] / "exported")
        assert run_cli(["export", folder, "--format", "onnx", "--calib", world["calib"], *out], capsys)[0] == 0
    before = fingerprint(world["tmp"])
    listing = sorted(str(p) for p in world["tmp"].rglob("*"))
    _interrupt_after(monkeypatch, "onnxruntime")
    code, _, err = run_cli(["export", folder, "--format", "onnx", "--calib", world["calib"], *out], capsys)
    assert code == 130, err
    assert fingerprint(world["tmp"]) == before and sorted(str(p) for p in world["tmp"].rglob("*")) == listing
    assert not leftovers(world["tmp"])


def test_an_interrupted_bench_leaves_nothing(world, capsys, monkeypatch):
    import compress.run.deploy as deploy

    folder = world["tmp"] / "P"
    shutil.copytree(world["P"], folder)
    before = fingerprint(world["tmp"])
    listing = sorted(str(p) for p in world["tmp"].rglob("*"))

    def interrupted(report, out_dir):
        (Path(out_dir) / "report.json").write_text("{partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(deploy, "write_report", interrupted)
    for out in ([], ["-o", world["tmp"] / "new-report"]):
        code, _, err = run_cli(B.format(P=folder).split() + out, capsys)
        assert code == 130, err
        assert fingerprint(world["tmp"]) == before and sorted(str(p) for p in world["tmp"].rglob("*")) == listing
        assert not leftovers(world["tmp"])


def test_exports_and_reports_record_their_weights(world, capsys):
    from compress.artifacts.saved import weights_digest

    recorded = json.loads((world["runs"] / "Q-export" / "export.json").read_text())["source"]
    assert recorded == {"file": "model.safetensors", "sha256": weights_digest(world["Q"] / "model.safetensors")}
    code, _, err = run_cli(B.format(P=world["P"]).split() + ["-o", world["tmp"] / "r"], capsys)
    assert code == 0, err
    report = json.loads((world["tmp"] / "r" / "report.json").read_text())
    assert report["sources"]["compressed"]["sha256"] == weights_digest(world["P"] / "model.safetensors")
    code, _, err = run_cli(B.format(P=world["P"]).split() + ["-o", world["tmp"] / "r", "--overwrite"], capsys)
    assert code == 0, err  # an earlier report is replaced with --overwrite


def _full_disk(monkeypatch, free: int = 0):
    import collections
    import shutil as shutil_module

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_module, "disk_usage", lambda _path: usage(1 << 30, (1 << 30) - free, free))


def test_ort_format_on_a_full_disk_is_exit_8_in_one_line(world, capsys, monkeypatch):
    """onnxruntime words a full disk as "Failed to save ORT format model to file: <its temporary file>"."""
    import onnxruntime

    real = onnxruntime.InferenceSession

    def session(path, sess_options=None, **kw):
        if sess_options is not None and sess_options.optimized_model_filepath:
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : inference_session.cc:1171 SaveToOrtFormat Failed to "
                               f"save ORT format model to file: {sess_options.optimized_model_filepath}")
        return real(path, sess_options=sess_options, **kw)

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    _full_disk(monkeypatch)
    folder = world["tmp"] / "P"
    shutil.copytree(world["P"], folder)
    before = fingerprint(world["tmp"])
    code, _, err = run_cli(["export", folder, "--format", "onnx,ort-format", "--calib", world["calib"]], capsys)
    assert code == 8, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"cannot write {folder}/model.ort: the disk is full" in errors[0], err
    assert ".partial" not in err and ".compress-ort-" not in err and "Traceback" not in err
    assert fingerprint(world["tmp"]) == before and not leftovers(world["tmp"])


def test_aoti_on_a_full_disk_is_refused_before_the_compiler_runs(world, capsys, monkeypatch):
    if not get("aoti").available()[0]:
        pytest.skip("AOTInductor needs a C++ compiler")
    _full_disk(monkeypatch, free=1 << 20)
    code, _, err = run_cli(["export", world["P"], "--format", "aoti", "--calib", world["calib"], "-o",
                            world["tmp"] / "aoti"], capsys)
    assert code == 8, err
    assert "cannot write" in err and "model.aoti.pt2: the disk is full" in err and "Traceback" not in err
    assert not (world["tmp"] / "aoti").exists() and not leftovers(world["tmp"])
