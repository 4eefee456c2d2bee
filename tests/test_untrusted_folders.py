"""Opening a compress output folder never runs code it names: one row per tampered folder and command.

A folder's ``compress.json`` names the architecture its model is rebuilt from. Only the tool's own list
(torchvision:, timm:, the shipped archs, the built-in detector builders) is built without ``--trust``; a file
path or any other ``module:attr`` is refused with exit 3 and one line naming ``compress.json`` and ``--trust``,
before anything is imported. Every row checks that no file appeared (the payload would create one), the folder
is byte-identical, and nothing partial was left.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli_helpers import run_cli
from tests.safety import fingerprint, leftovers

EVIL_PY = "from pathlib import Path\nPath('PWNED_BY_IMPORT').write_text('x')\ndef net(**kw):\n    Path('PWNED').write_text('x')\n"


def _tamper(folder: Path, how: str, tmp: Path) -> None:
    record_path = folder / "compress.json"
    record = json.loads(record_path.read_text())
    if how == "os:system":
        record["spec"].update(arch="os:system", arch_kwargs={"command": "touch PWNED"})
    elif how == "file":
        (tmp / "evil.py").write_text(EVIL_PY)
        record["spec"].update(arch=f"{tmp / 'evil.py'}:net", arch_kwargs={})
    elif how == "compress-internal":  # the tool's own module, but not an architecture: still code the folder chose
        record["spec"].update(arch="compress.util.atomic:write_text", arch_kwargs={"path": "PWNED", "text": "x"})
    elif how == "fetching":  # an allowed architecture told to read or download weights the folder chose
        record["spec"].update(arch="torchvision:resnet18", arch_kwargs={"weights": "DEFAULT"})
    elif how == "list":
        record = []
    elif how == "spec list":
        record["spec"] = []
    elif how == "arch number":
        record["spec"]["arch"] = 5
    record_path.write_text(json.dumps(record))


@pytest.fixture(scope="module")
def pruned(tiny_assets, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trusted")
    code, _, _ = _main(["prune", tiny_assets / "ckpt.pt", "--arch", "digits", "--calib", tiny_assets / "calib",
                        "--no-recover", "--no-progress", "--ratio", "0.3", "-o", tmp / "good"])
    assert code == 0
    return tmp / "good"


def _main(args):
    from compress.cli.main import main

    try:
        main([str(a) for a in args])
    except SystemExit as exit_:
        return exit_.code, None, None
    return 0, None, None


@pytest.fixture
def world(pruned, tiny_assets, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the payloads write into the working folder
    return {"good": pruned, "calib": tiny_assets / "calib", "tmp": tmp_path}


TAMPERED = ["os:system", "file", "compress-internal", "fetching"]
COMMANDS = {
    "inspect": "inspect {out}",
    "export": "export {out} --format onnx --calib {calib}",
    "export -o": "export {out} --format onnx --calib {calib} -o {tmp}/exported",
    "bench": "bench {out} --backend torch --batch 1 --iters 1 --warmup 0 --min-seconds 0 --no-memory -o {tmp}/report",
    "prune it again": "prune {out} --calib {calib} --no-recover --no-progress -o {tmp}/again",
}
CASES = [(how, cmd, 3, ("compress.json", "--trust", "nothing was run")) for how in TAMPERED for cmd in COMMANDS]
CASES += [(how, cmd, 3, ("compress.json", fragment)) for how, fragment in
          (("list", "holds a JSON list"), ("spec list", '"spec" is a JSON list, expected object'),
           ("arch number", '"spec.arch" is a JSON int, expected string')) for cmd in ("inspect", "bench", "export")]


@pytest.mark.parametrize("how, command, code, fragments", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_a_tampered_folder_runs_nothing(world, capsys, how, command, code, fragments):
    out = world["tmp"] / "out"
    shutil.copytree(world["good"], out)
    _tamper(out, how, world["tmp"])
    before = fingerprint(out)
    listing = sorted(str(p) for p in world["tmp"].rglob("*"))
    got, stdout, err = run_cli(COMMANDS[command].format(out=out, **world).split(), capsys)
    assert got == code, err
    errors = [line for line in err.splitlines() if line.lower().startswith("error:")]
    assert len(errors) == 1 and all(f in errors[0] for f in fragments), err
    assert "Traceback" not in err
    assert not list(world["tmp"].glob("PWNED*"))  # nothing ran
    assert fingerprint(out) == before
    assert sorted(str(p) for p in world["tmp"].rglob("*")) == listing and not leftovers(world["tmp"])


@pytest.mark.parametrize("how", TAMPERED)
def test_compress_load_refuses_a_tampered_folder_without_trust(world, how):
    import compress
    from compress.errors import CheckpointError

    out = world["tmp"] / "out"
    shutil.copytree(world["good"], out)
    _tamper(out, how, world["tmp"])
    with pytest.raises(CheckpointError, match="compress.json.*--trust"):
        compress.load(str(out))
    assert not list(world["tmp"].glob("PWNED*"))


def test_trust_runs_a_folders_own_architecture_file(world, tiny_assets):
    """With --trust the folder's file is the user's choice: it is imported and built (here: it builds the digits
    net and leaves its mark), exactly like a pickle with --trust."""
    import compress

    out = world["tmp"] / "out"
    shutil.copytree(world["good"], out)
    (world["tmp"] / "arch.py").write_text("from pathlib import Path\nfrom compress.archs.digits import digitnet\n"
                                          "def net(**kw):\n    Path('BUILT').write_text('x')\n    return digitnet(**kw)\n")
    record = json.loads((out / "compress.json").read_text())
    record["spec"].update(arch=f"{world['tmp'] / 'arch.py'}:net")
    (out / "compress.json").write_text(json.dumps(record))
    with pytest.raises(Exception, match="--trust"):
        compress.load(str(out))
    assert not (world["tmp"] / "BUILT").exists()
    loaded = compress.load(str(out), trust=True)
    assert loaded.pruned and (world["tmp"] / "BUILT").exists()


def test_the_allow_list():
    from compress.models.arch import is_trusted_arch

    for spec in ("torchvision:resnet18", "timm:resnet18", "digits", "cifar_resnet20", "compress.archs.digits:digitnet",
                 "compress.detection.yolo:build"):
        assert is_trusted_arch(spec), spec
    for spec in ("os:system", "subprocess:run", "x.py:net", "/tmp/x.py:net", "compress.util.atomic:write_text",
                 "compress.archs.digits:_private", "compress.archs/../x:net", "torchvision:", "", None, 5, "builtins:exec"):
        assert not is_trusted_arch(spec), spec


def test_the_allow_list_takes_the_users_packages(monkeypatch):
    from compress.models.arch import is_trusted_arch

    assert not is_trusted_arch("mypkg.models:build")
    monkeypatch.setenv("COMPRESS_TRUSTED_ARCHS", "mypkg, other")
    assert is_trusted_arch("mypkg.models:build") and is_trusted_arch("mypkg:build")
    assert not is_trusted_arch("mypkgevil:build") and not is_trusted_arch("mypkg/x.py:build")
