"""Bad input, one row per case: the command, its exit code, a fragment of its one-line message.

Every row also checks that the inputs are byte-identical afterwards, that nothing partial (or a
stray output) was left, and that there was no traceback. Rows marked ``early`` must fail before the
model is loaded. ``{P}`` is a prune of the tiny test checkpoint; ``{tmp}`` a fresh folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_helpers import run_cli
from tests.safety import fingerprint, leftovers

P = "prune {ckpt} --arch digits --calib {calib} --no-recover --no-progress"

CASES = [  # case, command, exit code, message fragment, early (before loading)
    ("-o is --calib, --overwrite", P + " -o {calib} --overwrite", 2, "would overwrite the input", True),
    ("-o inside --calib", P + " -o {calib}/out", 2, "is inside the input", True),
    ("-o inside --eval", P + " --eval {eval} -o {eval}/0/out", 2, "is inside the input", True),
    ("-o contains the checkpoint", P + " -o {assets} --overwrite", 2, "contains the input", True),
    ("-o symlink to --calib", P + " -o {tmp}/link --overwrite", 2, "would overwrite the input", True),
    ("-o unrelated folder", P + " -o {tmp}/mine", 2, "already exists", True),
    ("-o unrelated folder, --overwrite", P + " -o {tmp}/mine --overwrite", 2, "--overwrite would delete them", True),
    ("-o . (the current folder)", P + " -o . --overwrite", 2, "is the current folder or holds it", True),
    ("-o existing file", P + " -o {tmp}/file.txt", 2, "is an existing file, not a folder", True),
    ("-o existing file, --overwrite", P + " -o {tmp}/file.txt --overwrite", 2, "is an existing file, not a folder", True),
    ("-o under a file", P + " -o {tmp}/file.txt/out", 2, "is a file, not a folder", True),
    ("-o in /proc", P + " -o /proc/compress-test-out", 8, "cannot be written", True),
    ("-o in /sys", P + " -o /sys/compress-test-out", 8, "cannot be written", True),
    ("--ratio 1.5", P + " --ratio 1.5 -o {tmp}/o", 2, "--ratio must be in", True),
    ("--ratio 0", P + " --ratio 0 -o {tmp}/o", 2, "--ratio 0 removes nothing", True),
    ("--target-macs 0", P + " --target-macs 0 -o {tmp}/o", 2, "--target-macs must be in", True),
    ("two targets", P + " --ratio 0.5 --target-macs 0.5 -o {tmp}/o", 2, "give exactly one of", True),
    ("--device gpu", P + " --device gpu -o {tmp}/o", 2, "unknown device 'gpu'", True),
    ("--batch-size 0", P + " --batch-size 0 -o {tmp}/o", 2, "--batch-size", True),
    ("labels class 99", P + " --importance taylor --labels {tmp}/labels.csv -o {tmp}/o", 4, "line 3", False),
    ("export into unrelated folder", "export {ckpt} --arch digits --format onnx -o {tmp}/mine", 2, "holds other files", True),
    ("bench a checkpoint alone", "bench {ckpt} -o {tmp}/o", 2, "not a compress output folder", True),
    ("sweep over unrelated folder", "sweep {ckpt} --arch digits --calib {calib} -o {tmp}/mine --overwrite", 2,
     "--overwrite would delete them", True),
    ("demo in unrelated folder", "demo --dir {tmp}/mine", 2, "holds other files (notes.txt)", True),
]


@pytest.fixture
def world(tiny_assets, tmp_path):
    """The tiny assets plus a user's folder with a note, a plain file, a symlink to --calib and a labels CSV."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my notes")
    (tmp_path / "file.txt").write_text("a file")
    (tmp_path / "link").symlink_to(tiny_assets / "calib", target_is_directory=True)
    names = sorted(p.name for p in (tiny_assets / "calib").iterdir())
    rows = [f"{name},{99 if i == 1 else i % 10}" for i, name in enumerate(names)]
    (tmp_path / "labels.csv").write_text("file,class_index\n" + "\n".join(rows) + "\n")
    return {"ckpt": tiny_assets / "ckpt.pt", "calib": tiny_assets / "calib", "eval": tiny_assets / "eval",
            "assets": tiny_assets, "tmp": tmp_path}


@pytest.mark.parametrize("case, command, code, fragment, early", CASES, ids=[c[0] for c in CASES])
def test_bad_input(world, capsys, case, command, code, fragment, early):
    roots = [world["assets"], world["tmp"]]
    before = fingerprint(*roots)
    listing = sorted(str(p) for root in roots for p in Path(root).rglob("*"))
    got, stdout, err = run_cli(command.format(P=P, **world).split(), capsys)
    assert got == code, err
    assert fragment in err, err
    assert "Traceback" not in err and len([line for line in err.splitlines() if line.lower().startswith("error:")]) == 1, err
    if early:
        assert "model:" not in err, "checked only after loading the model"
    assert fingerprint(*roots) == before  # every input and every user file byte-identical
    assert sorted(str(p) for root in roots for p in Path(root).rglob("*")) == listing  # nothing added, nothing left
    assert not leftovers(world["tmp"]) and not leftovers(world["assets"])


def test_json_errors_are_one_object_on_stdout(world, capsys):
    import json

    code, stdout, err = run_cli((P + " --ratio 2 -o {tmp}/o --json").format(**world).split(), capsys)
    assert code == 2 and json.loads(stdout) == {"error": "--ratio must be in (0, 1), got 2.0", "hint": None,
                                                "exit_code": 2}
    code, stdout, _ = run_cli(["prune", world["ckpt"], "--calib", world["calib"], "--ratio", "x", "--json"], capsys)
    assert code == 2 and "'x' is not a valid float" in json.loads(stdout)["error"]


# Labelled detection and segmentation inputs, checked like classification labels: one line naming the
# file (and line), exit 4, before the graph is built. {det} is a 10-class detector, {seg} an 11-class segmenter.
LABEL_CASES = [  # case, command, message fragment
    ("YOLO class the detector lacks", "prune {det} --arch detdigits --calib {calib} --eval {tmp}/det-eval --no-recover "
     "-o {tmp}/o", "labels/a.txt line 2: class 42, but the model has 10 classes (0-9)"),
    ("COCO category the detector lacks", "prune {det} --arch detdigits --calib {calib} --eval {tmp}/coco-eval "
     "--no-recover -o {tmp}/o", "annotations[0] (id 7): category_id 12, but the model has 10 classes"),
    ("mask of the wrong size", "prune {seg} --arch segdigits --calib {calib} --eval {tmp}/seg-small --no-recover "
     "-o {tmp}/o", "masks/a.png is 9x7 but its image"),
    ("mask of a class the segmenter lacks", "prune {seg} --arch segdigits --calib {calib} --eval {tmp}/seg-77 "
     "--no-recover -o {tmp}/o", "masks/a.png holds class 77, but the model has 11 classes (0-10; 255 = ignore)"),
    ("more class folders than classes", "prune {ckpt} --arch digits --calib {calib} --eval {tmp}/eleven --no-recover "
     "-o {tmp}/o", "has 11 class folders, but the model has 10 classes"),
    ("bench: YOLO class the detector lacks", "bench {tmp}/det-out --eval {tmp}/det-eval -o {tmp}/r",
     "class 42, but the model has 10 classes"),
]


@pytest.fixture(scope="module")
def labelled_world(tiny_assets, tmp_path_factory):
    """Random-weight detector and segmenter checkpoints, a pruned detector folder, and bad labelled folders."""
    import json

    import numpy as np
    import torch
    from PIL import Image

    from compress.archs.detdigits import detdigitnet
    from compress.archs.segdigits import segdigitnet

    tmp = tmp_path_factory.mktemp("labelled")
    torch.manual_seed(0)
    torch.save(detdigitnet().state_dict(), tmp / "det.pt")
    torch.save(segdigitnet().state_dict(), tmp / "seg.pt")
    rng = np.random.default_rng(0)

    def image(path, h=32, w=32):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)

    image(tmp / "det-eval/images/a.png")
    (tmp / "det-eval/labels").mkdir()
    (tmp / "det-eval/labels/a.txt").write_text("3 0.5 0.5 0.2 0.2\n42 0.5 0.5 0.2 0.2\n")
    image(tmp / "coco-eval/images/a.png")
    (tmp / "coco-eval/annotations.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 32, "height": 32}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 12, "bbox": [4, 4, 10, 10]}]}))
    for name, mask in (("seg-small", np.zeros((7, 9), np.uint8)), ("seg-77", np.full((32, 32), 77, np.uint8))):
        image(tmp / name / "images/a.png")
        (tmp / name / "masks").mkdir()
        Image.fromarray(mask).save(tmp / name / "masks/a.png")
    for c in range(11):
        image(tmp / "eleven" / f"{c:02d}" / "0.png")
    code = main_code(["prune", tmp / "det.pt", "--arch", "detdigits", "--calib", tiny_assets / "calib", "--no-recover",
                      "--no-progress", "-o", tmp / "det-out"])
    assert code == 0
    return {"det": tmp / "det.pt", "seg": tmp / "seg.pt", "ckpt": tiny_assets / "ckpt.pt",
            "calib": tiny_assets / "calib", "tmp": tmp}


def main_code(args) -> int:
    from compress.cli.main import main

    try:
        main([str(a) for a in args])
    except SystemExit as exit_:
        return exit_.code
    return 0


@pytest.mark.parametrize("case, command, fragment", LABEL_CASES, ids=[c[0] for c in LABEL_CASES])
def test_bad_labels_are_refused_before_the_graph(labelled_world, capsys, case, command, fragment):
    capsys.readouterr()
    before = fingerprint(labelled_world["tmp"])
    code, _, err = run_cli(command.format(**labelled_world).split(), capsys)
    assert code == 4, err
    assert fragment in err, err
    assert "graph:" not in err and "importance:" not in err, "checked only after the graph was built"
    assert "Traceback" not in err and len([line for line in err.splitlines() if line.lower().startswith("error:")]) == 1, err
    assert fingerprint(labelled_world["tmp"]) == before
    assert not (labelled_world["tmp"] / "o").exists() and not (labelled_world["tmp"] / "r").exists()
