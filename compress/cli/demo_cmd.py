"""``compress demo``: the whole pipeline on the embedded default, with nothing downloaded.

Makes (or reuses) a small trained checkpoint and image folders from the handwritten digits that
scikit-learn ships, then runs ``compress prune`` on them with recovery, export and the
benchmark report — the same code path a user's checkpoint takes. Then the same for segmentation
(``--segment``, on by default): a small encoder-decoder trained here on scenes of those digits
(``compress.demo.seg``), pruned with the prune command's own default recovery and measured in mIoU; and
for detection (``--detect``, on by default): a small single-scale detector trained here on scenes of those
digits with their boxes (``compress.demo.det``), measured in labelled mAP and mAP against the original's boxes.
"""

from __future__ import annotations

from pathlib import Path

import click


DEMO_FOLDERS = ("assets", "pruned", "seg-assets", "seg-pruned", "det-assets", "det-pruned")  # all the demo writes: a --dir holding only these is its own


@click.command()
@click.option("--dir", "workdir", type=click.Path(file_okay=False), default=".demo", show_default=True,
              help="Where the embedded assets and the output go.")
@click.option("--ratio", type=float, default=0.5, show_default=True)
@click.option("--target-speedup", type=float, default=None,
              help="Prune for measured onnxruntime latency instead of --ratio (at --batch).")
@click.option("--batch", type=int, default=32, show_default=True, help="Batch size of a --target-speedup.")
@click.option("--export", "formats", default="onnx,int8,trt", show_default=True,
              help="Formats to export (trt is skipped with its reason where TensorRT/GPU are absent).")
@click.option("--bench/--no-bench", default=True, show_default=True)
@click.option("--recover-epochs", type=float, default=15, show_default=True,
              help="Distillation epochs (the demo keeps it short; prune's own default is by data size).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--segment/--no-segment", default=True, show_default=True,
              help="Also prune the embedded segmentation model (digit scenes, mIoU) after the classifier.")
@click.option("--detect/--no-detect", default=True, show_default=True,
              help="Also prune the embedded detector (digit scenes with boxes, mAP) after the segmenter.")
def demo(workdir, ratio, target_speedup, batch, formats, bench, recover_epochs, seed, segment, detect):
    """Prune, recover, export and measure the embedded digits classifier, segmenter and detector."""
    from compress.errors import UsageError
    from compress.artifacts.outputs import check_output

    root = Path(workdir)
    others = sorted(p.name for p in root.iterdir() if p.name not in DEMO_FOLDERS) if root.is_dir() else []
    if others:
        raise UsageError(f"--dir {root} holds other files ({', '.join(others[:3])}): the demo writes only into a new "
                         "or empty folder or its own earlier one", "choose another --dir")
    check_output(root, replaces=False, markers=DEMO_FOLDERS)
    from compress.cli import output
    from compress.demo.assets import make_demo_assets

    output.info(f"demo: preparing the embedded default in {root}/assets (scikit-learn digits, trained here)")
    assets = make_demo_assets(root / "assets", seed=seed)
    if assets.eval_accuracy is not None:
        output.info(f"demo: checkpoint {assets.checkpoint} ({assets.eval_accuracy:.2%} top-1 on {assets.eval_dir})")
    _prune(assets, root / "pruned", ratio, target_speedup, batch, formats, bench, seed,
           extra=("--recover-epochs", str(recover_epochs)))
    if segment:
        _segment(root, ratio, target_speedup, batch, formats, bench, seed)
    if detect:
        _detect(root, ratio, target_speedup, batch, formats, bench, seed)


def _segment(root: Path, ratio, target_speedup, batch, formats, bench, seed) -> None:
    """The segmentation half: the trained SegDigitNet, pruned with prune's default recovery."""
    from compress.cli import output
    from compress.demo.seg import make_seg_demo_assets

    output.info(f"demo: preparing the embedded segmenter in {root}/seg-assets (digit scenes, trained here)")
    assets = make_seg_demo_assets(root / "seg-assets", seed=seed)
    if assets.eval_miou is not None:
        output.info(f"demo: checkpoint {assets.checkpoint} ({assets.eval_miou:.2%} mIoU on {assets.eval_dir})")
    _prune(assets, root / "seg-pruned", ratio, target_speedup, batch, formats, bench, seed)


def _detect(root: Path, ratio, target_speedup, batch, formats, bench, seed) -> None:
    """The detection half: the trained DetDigitNet, pruned with prune's default recovery, labelled mAP."""
    from compress.cli import output
    from compress.demo.det import make_det_demo_assets

    output.info(f"demo: preparing the embedded detector in {root}/det-assets (digit scenes with boxes, trained here)")
    assets = make_det_demo_assets(root / "det-assets", seed=seed)
    if assets.eval_map50 is not None:
        output.info(f"demo: checkpoint {assets.checkpoint} ({assets.eval_map50:.2%} mAP@0.5, {assets.eval_map:.2%} "
                    f"mAP@0.5:0.95 on {assets.eval_dir})")
    _prune(assets, root / "det-pruned", ratio, target_speedup, batch, formats, bench, seed)


def _prune(assets, out: Path, ratio, target_speedup, batch, formats, bench, seed, extra: tuple[str, ...] = ()) -> None:
    """``compress prune`` of embedded assets (with prune's own default recovery unless ``extra`` says otherwise)."""
    from compress.cli import output
    from compress.cli.main import cli

    args = ["prune", str(assets.checkpoint), "--arch", assets.arch, "--calib", str(assets.calib_dir),
            "--eval", str(assets.eval_dir), "-o", str(out), "--overwrite", "--seed", str(seed), *extra]
    args += ["--target-speedup", str(target_speedup), "--batch", str(batch)] if target_speedup else ["--ratio", str(ratio)]
    if formats:
        args += ["--export", formats]
    if bench:
        args.append("--bench")
    output.info("demo: compress " + " ".join(args))
    cli.main(args=args, prog_name="compress", standalone_mode=False)
