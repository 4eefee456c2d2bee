"""``compress prune``: importance -> plan -> surgery -> recovery -> save (-> export -> bench)."""

from __future__ import annotations

import click

from compress.artifacts import FORMATS
from compress.export.quantize import METHODS, TARGETS
from compress.export.runtimes import get, latency_backends
from compress.prune.schedules import SCHEDULES
from compress.cli.options import (baseline_load, baseline_options, comma_choice, json_option, load_kwargs, model_options,
                                  preprocess_options)

IMPORTANCE_NAMES = ["taylor-sq", "taylor-abs", "taylor", "taylor-l1", "l1", "random"]  # prune.importance ESTIMATORS (tests/test_docs.py)
AXES = ("width", "resolution")  # compress.run.axes.AXES (kept here: --help must not import torch)
TASK_NAMES = ["auto", "classify", "segment", "detect", "raw"]  # compress.tasks.CHOICES (kept here: --help must not import torch)


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=True))
@click.option("--calib", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of unlabeled images (searched recursively).")
@click.option("--ratio", type=float, default=None,
              help="Fraction of prunable channels to remove, in (0, 1), the same share from every layer that rounding "
                   "allows (importance picks which channels). Default: 0.5 when no other target is given.")
@click.option("--target-macs", type=float, default=None, help="Remove channels until MACs fall to this fraction.")
@click.option("--target-latency", default=None, metavar="TIME",
              help="Prune until measured latency on --backend is this, e.g. 2.5ms (batch --batch).")
@click.option("--target-speedup", type=float, default=None, help="Prune until measured latency is original / this.")
@click.option("--axes", "axes", callback=comma_choice(AXES, required=False), default=None, metavar="AXES",
              help="What --target-macs may shrink: width (channels), resolution (the input size), or "
                   "width,resolution: a grid of input sizes, each with the channel cut that completes the target, "
                   "chosen by measured held-out agreement with the original at full size. Default: width,resolution "
                   "with --target-macs (where the model and task allow it), width otherwise.")
@click.option("--backend", type=click.Choice(latency_backends()), default="onnxruntime",
              show_default=True, help="Runtime a latency target is measured on.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Batch size a latency target is measured at.")
@click.option("--threads", type=int, default=None, help="CPU threads of that runtime (default: all cores).")
@click.option("-o", "--out", type=click.Path(), default=None, help="Output folder (default: CHECKPOINT.pruned next to it).")
@model_options
@preprocess_options
@click.option("--task", type=click.Choice(TASK_NAMES), default="auto", show_default=True,
              help="What the output is: auto (from its structure), classify ((N, classes) logits) or segment "
                   "((N, classes, H, W) maps; --eval then holds images/ + masks/) or detect (a detector's raw head "
                   "outputs, compress.detection) or raw (any tensors: variance-normalised regression, relative error "
                   "and cosine against the original; never picked by auto).")
@click.option("--decode", metavar="FILE.py:FN", default=None,
              help="With --task raw, a detector of your own: FN(outputs, input_size) returns per image (boxes (k, 4) "
                   "x1,y1,x2,y2 in pixels of the model input, scores (k,), labels (k,)); gives mAP against the "
                   "original's boxes and, with --eval (YOLO txt or COCO JSON), labelled mAP. Runs that file's code.")
@click.option("--importance", type=click.Choice(IMPORTANCE_NAMES), default="taylor-sq", show_default=True)
@click.option("--draws", type=click.IntRange(min=1), default=1, show_default=True, help="Random-gradient draws per image.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV file,class_index for the labelled 'taylor' baseline only.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--eval", "eval_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Labelled folder to report the task's metric: ImageFolder layout (top-1), or images/ + masks/ "
                   "PNGs (segmentation mIoU).")
@click.option("--max-images", type=click.IntRange(min=1), default=None, help="Use at most this many calibration images.")
@click.option("--importance-images", type=click.IntRange(min=1), default=None, help="Score importance on at most this many.")
@click.option("--max-layer-ratio", type=float, default=None,
              help="Cap on the fraction any layer loses; with --ratio it lets importance rank channels across layers "
                   "(default: --ratio itself, else 0.5; raised in steps to 0.875 only if a target needs it).")
@click.option("--min-channels", type=int, default=1, show_default=True, help="No layer ends narrower than this.")
@click.option("--round-to", type=int, default=8, show_default=True, help="Surviving widths are multiples of this (1: off).")
@click.option("--keep", multiple=True, metavar="PATTERN", help="Layers (glob on names) that never lose channels.")
@click.option("--prune-stem", is_flag=True, help="Allow pruning the input stem's output channels.")
@click.option("--prune-layernorm", is_flag=True,
              help="Allow pruning widths an nn.LayerNorm normalises (ViT embedding, Swin/ConvNeXt channels): the cut "
                   "changes its statistics, so recovery is required. A ViT's embedding is its stem: add --prune-stem.")
@click.option("--recover/--no-recover", default=True, show_default=True, help="Self-distillation from the original.")
@click.option("--schedule", type=click.Choice(tuple(SCHEDULES)), default="oneshot", show_default=True,
              help="; ".join(f"{name}: {entry.help}" for name, entry in SCHEDULES.items()) + ".")
@click.option("--repair/--no-repair", default=True, show_default=True,
              help="Refit the layers the cut disturbed to the original's outputs on the calibration images (least "
                   "squares, no labels, no training), kept where held-out KL against the original falls.")
@click.option("--recalibrate-bn/--no-recalibrate-bn", default=True, show_default=True,
              help="Re-estimate the cut model's BatchNorm statistics on 512 calibration images (seconds; a "
                   "half-pruned ResNet-32 goes from 23 % to 58 % top-1), kept where held-out agreement does not "
                   "fall: the model --no-recover writes, and the one recovery starts from.")
@click.option("--recover-epochs", type=float, default=None, help="Distillation epochs (default: automatic by data size).")
@click.option("--recover-steps", type=int, default=None, help="Distillation steps instead of epochs.")
@click.option("--recover-minutes", type=float, default=None,
              help="Wall-time cap on recovery: the schedule shrinks to the steps that fit (default: 9.5 for the "
                   "automatic budget, none with --recover-epochs/--recover-steps; inf for none).")
@click.option("--recover-lr", type=float, default=None, help="Peak learning rate of distillation.")
@click.option("--temperature", type=float, default=None, help="Distillation temperature.")
@click.option("--recover-features", type=float, default=None,
              help="Weight of stage-output feature matching in distillation (same-shape stages only).")
@click.option("--recover-ema", type=float, default=None,
              help="Decay of the moving average of the student's weights that the held-out checks judge and the "
                   "run keeps (default 0.999; 0: off, the student's own weights).")
@click.option("--recover-precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto",
              show_default=True, help="Distillation arithmetic. auto: bf16 on CUDA where supported (else fp16) and on "
                                      "CPUs with native bf16; fp32 elsewhere.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--export", "formats", callback=comma_choice(FORMATS, required=False), default=None, metavar="FORMATS",
              help=f"Also export: {','.join(FORMATS)}.")
@click.option("--int8-method", type=click.Choice(METHODS), default="minmax", show_default=True)
@click.option("--target", type=click.Choice(TARGETS), default="cpu", show_default=True,
              help="Deployment target (picks INT8 types).")
@click.option("--bench", is_flag=True, help="Measure latency/memory/size of original vs pruned at the end.")
@baseline_options
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--devices", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data-parallel processes on this machine (relaunches under torchrun; GPUs or CPU/gloo).")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing output folder: only an earlier compress output or an empty folder.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@json_option
def prune(checkpoint, calib, ratio, target_macs, target_latency, target_speedup, axes, backend, batch, threads, out,
          task, decode, importance, draws, labels, seed, eval_dir, max_images,
          importance_images, max_layer_ratio, min_channels, round_to, keep, prune_stem, prune_layernorm, recover,
          schedule, repair, recalibrate_bn,
          recover_epochs, recover_steps, recover_minutes, recover_lr, temperature, recover_features, recover_ema,
          recover_precision, batch_size, formats, int8_method,
          target, bench, baseline, baseline_arch, baseline_arch_kwargs, device, devices, overwrite, no_progress, as_json,
          **model_params):
    """Prune CHECKPOINT using importance estimated on the unlabeled images in --calib.

    Without a target, removes half the prunable channels (--ratio 0.5)."""
    ratio = _check_early(checkpoint, calib, ratio, target_macs, target_latency, target_speedup, max_layer_ratio,
                         round_to, min_channels, device, out, overwrite, eval_dir, labels, model_params)
    from compress import distributed

    if devices > 1 and not distributed.launched():
        _relaunch(devices)
    from compress.cli import output
    from compress.devices import resolve_device
    from compress.prune.importance import ImportanceConfig
    from compress.prune.latency.config import LatencyConfig, parse_latency
    from compress.run.pipeline import PruneConfig, run_prune
    from compress.prune.plan import PrunePolicy
    from compress.recover import DistillConfig

    from compress.errors import UsageError

    decode = _decode_path(decode)
    alternative = baseline_load(model_params, baseline, baseline_arch, baseline_arch_kwargs)
    if alternative and not bench:
        raise UsageError("--baseline is a row of --bench", "add --bench")
    if axes and "resolution" in axes and target_macs is None:
        raise UsageError("--axes resolution plans a --target-macs", "give --target-macs, or leave --axes width")
    if SCHEDULES[schedule].during_recovery and not recover:
        raise UsageError(f"--schedule {schedule} cuts during recovery", "drop --no-recover, or use --schedule oneshot")
    if prune_layernorm and not recover:
        raise UsageError("--prune-layernorm changes LayerNorm statistics: the cut is not exact and needs recovery",
                         "drop --no-recover")
    target_ms = parse_latency(target_latency) if target_latency is not None else None
    if target_ms is not None or target_speedup is not None:
        get(backend).require()  # before any work: one line naming the extra to install
    if formats:
        from compress.run.deploy import require_runtimes

        require_runtimes(formats)
    if ratio is None and target_macs is None and target_ms is None and target_speedup is None:
        ratio = 0.5
    distill_kwargs = {k: v for k, v in dict(epochs=recover_epochs, steps=recover_steps, max_minutes=recover_minutes,
                                            lr=recover_lr, temperature=temperature, features=recover_features,
                                            ema=recover_ema).items()
                      if v is not None}
    distill_kwargs["amp"] = {"fp32": "off"}.get(recover_precision, recover_precision)
    config = PruneConfig(
        checkpoint=checkpoint, calib=calib, out=out, load=load_kwargs(model_params),
        policy=PrunePolicy(ratio=ratio, target_macs=target_macs, target_latency_ms=target_ms,
                           target_speedup=target_speedup, max_layer_ratio=max_layer_ratio,
                           min_channels=min_channels, round_to=round_to, keep=tuple(keep), prune_stem=prune_stem,
                           layernorm_widths=prune_layernorm),
        importance=ImportanceConfig(name=importance, draws=draws, seed=seed, batch_size=batch_size, device=device,
                                    progress=not no_progress),
        latency=LatencyConfig(backend=backend, batch=batch, threads=threads,
                              device=str(resolve_device(device)) if get(backend).follows_device else "cpu"),
        recover=recover, schedule=schedule, repair=repair, recalibrate_bn=recalibrate_bn, task=task, decode=decode,
        distill=DistillConfig(batch_size=batch_size, seed=seed, **distill_kwargs),
        eval_dir=eval_dir, labels=labels, max_images=max_images, importance_images=importance_images, seed=seed,
        export=formats, int8_method=int8_method, target=target, bench=bench, overwrite=overwrite, device=device,
        progress=not no_progress, baseline=baseline, baseline_load=alternative[1] if alternative else {},
        axes=tuple(a for a in AXES if a in axes) or None,
    )
    result = run_prune(config, output.TERMINAL)
    _show(result, as_json)
    recovery = result.summary.recovery
    stopped = (recovery.recover_stopped if recovery else None) or ""
    if stopped.startswith("interrupted") and distributed.is_main():
        from compress.errors import RecoveryInterrupted

        raise RecoveryInterrupted(f"recovery {stopped}: wrote {result.out} with the best weights seen "
                                  f"(step {recovery.recover_best_step})",
                                  "the output is usable; rerun without interrupting for the full schedule")


def _decode_path(decode: str | None) -> str | None:
    """--decode FILE.py:fn with FILE made absolute, so the run record names it from anywhere (compress bench)."""
    if not decode or not decode.rpartition(":")[0].endswith(".py"):
        return decode
    from pathlib import Path

    path, _, fn = decode.rpartition(":")
    return f"{Path(path).resolve()}:{fn}" if Path(path).is_file() else decode


def _check_early(checkpoint, calib, ratio, target_macs, target_latency, target_speedup, max_layer_ratio, round_to,
                 min_channels, device, out, overwrite, eval_dir, labels, model_params):
    """What needs no model and no torch, before either is loaded (seconds, not minutes, to an error):
    the target (the default ratio), the device's name, and where the output goes. Returns the ratio."""
    from compress.checks import check_device_name, cli_targets
    from compress.prune.latency.config import parse_latency
    from compress.artifacts.outputs import check_output, default_out, input_paths

    target_ms = parse_latency(target_latency) if target_latency is not None else None
    ratio = cli_targets(ratio, target_macs, target_ms, target_speedup, max_layer_ratio=max_layer_ratio,
                        round_to=round_to, min_channels=min_channels)
    check_device_name(device)
    check_output(out or default_out(checkpoint), overwrite=overwrite,
                 inputs=input_paths(checkpoint=checkpoint, calib=calib, eval=eval_dir, labels=labels,
                                    arch=model_params.get("arch")))
    return ratio


def _relaunch(devices: int) -> None:
    """``--devices N``: the same command under torchrun, N processes on this machine."""
    import subprocess
    import sys

    from compress.cli.main import ARGV

    args, skip = [], False
    for arg in ARGV:
        if skip:
            skip = False
        elif arg == "--devices":
            skip = True
        elif not arg.startswith("--devices="):
            args.append(arg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={devices}", "-m", "compress", *args]
    from compress.cli.output import json_fd

    # with --json the children's JSON goes to the real stdout (each child keeps its other output on stderr)
    raise SystemExit(subprocess.call(cmd, stdout=json_fd()))


def _show(result, as_json: bool) -> None:
    from compress import distributed
    from compress.cli import output

    if not distributed.is_main():
        return

    s = result.summary
    if as_json:
        output.emit_json({"out": str(result.out), **s.to_json()})
        return
    changed = [(name.removesuffix(":out"), before, after) for name, before, after in result.widths
               if before != after and name.endswith((":out", ":heads", ":head_dim"))]  # its BN follows a layer
    output.table(f"widths ({len(changed)} layers changed)", ["layer", "before", "after"],
                 [(n, b, a) for n, b, a in changed])
    rows = [
        ("parameters", s.params_before, s.params_after, _ratio(s.params_after, s.params_before)),
        ("MACs", s.macs_before, s.macs_after, _ratio(s.macs_after, s.macs_before)),
    ]
    if s.latency is not None:
        lat = s.latency
        rows.append((f"latency, {lat.backend} batch {lat.batch} (ms)", f"{lat.original_ms:.3f}",
                     f"{lat.measured_ms:.3f}", f"{lat.speedup:.2f}x faster; target {lat.target_ms:.3f}, "
                     f"predicted {lat.predicted_ms:.3f}"))
        rows.append(("importance kept", "100 %", output.pct(lat.importance_kept),
                     f"model error {lat.prediction_error.mean:.1%} mean on held-out"))
    task = result.task
    metric, agree = s.written_figures()
    if "before" in s.labelled:
        rows.append((f"{task.metric_label} (eval)", output.pct(s.metric_before), output.pct(metric),
                     f"one-shot {output.pct(s.labelled.get('pruned'))}"))
    if agree is not None:
        first = "stage 1" if s.recovery is not None and s.recovery.recover_stages else "one-shot"  # gradual: its first cut
        rows.append((f"{task.agreement_label} (held out)", "100 %", output.pct(agree),
                     f"{first} {output.pct(s.one_shot_agreement)}"))
    if s.repair is not None:  # the least-squares repair after the cut (compress.recover.repair)
        rep = s.repair
        metric_repaired = f"; {task.metric_label} {output.pct(s.labelled['repaired'])}" if "repaired" in s.labelled else ""
        rows.append((f"{task.agreement_label} after repair (held out)", "100 %", output.pct(rep.repair_agreement_after),
                     f"one-shot {output.pct(rep.repair_agreement_before)}; {rep.repair_layers} layers refitted"
                     f"{'' if rep.repair_kept else ', refused'} in {rep.repair_seconds:.0f} s{metric_repaired}"))
    if s.recovery is not None and s.recovery.agreement_train is not None:
        rows.append((f"{task.agreement_label} (training images)", "100 %", output.pct(s.recovery.agreement_train),
                     f"{s.recovery.agreement_train_images:,} images, no augmentation"))
    rows += task.summary_rows(s.task_figures, output.pct)  # the task's own figures (detection: mAP)
    from compress.run import resolution

    rows += resolution.summary_rows(s, task, output.pct)  # the free alternative: the original at a smaller input
    output.table("summary", ["", "original", "pruned", "change"], rows)
    stages = s.recovery.recover_stages if s.recovery is not None else None
    if stages:  # --schedule gradual, twostep: each stage's cut (compress.prune.schedules)
        output.table(f"{s.recovery.recover_schedule} stages ({len(stages)})", ["stage", "step", "of the way", "MACs", "held-out agreement"],
                     [(g["stage"], g["step"], f"{g['share']:.0%}", f"{g['macs']:,} ({_ratio(g['macs'], s.macs_before)})",
                       output.pct(g.get("agreement"))) for g in stages])
    for p in s.protected_groups[:10]:
        reasons = "; ".join(f"{r['layer']} [{r['op']}]: {r['why']}" for r in p["protected"][:2])
        output.info(f"protected: group of {p['width']} channels ({p['layers'][0]} ...): {reasons}")
    smaller = resolution.verdict(s, task)
    if smaller:
        click.echo(smaller)
    verdict = s.bench.verdict if s.bench is not None else None
    if verdict:  # --bench --baseline: the bench tables went to stderr; the verdict belongs with the results
        click.echo(verdict["line"])
    output.info(f"wrote {result.out}")


def _ratio(after, before) -> str:
    return f"{after / before:.2f}x" if before else "-"

