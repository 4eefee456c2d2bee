"""Checks of options that need no model and no torch: the CLI runs them before it imports or
loads anything (importing torch alone takes seconds); :class:`compress.prune.plan.PrunePolicy` runs the
same target checks."""

from __future__ import annotations

import re

from compress.errors import PolicyError, UsageError

DEVICE_NAME = re.compile(r"auto|(cpu|cuda|mps|xpu)(:\d+)?")

DEFAULT_RATIO = 0.5  # what ``prune`` removes when no target is given


def check_targets(ratio: float | None = None, target_macs: float | None = None,
                  target_latency_ms: float | None = None, target_speedup: float | None = None, *,
                  max_layer_ratio: float | None = None, round_to: int = 8, min_channels: int = 1) -> None:
    """Raise :class:`PolicyError` (exit 2) naming the option that is out of range."""
    targets = (ratio, target_macs, target_latency_ms, target_speedup)
    if sum(t is not None for t in targets) != 1:
        raise PolicyError("give exactly one of --ratio, --target-macs, --target-latency and --target-speedup")
    if ratio is not None and not 0 <= ratio < 1:
        raise PolicyError(f"--ratio must be in [0, 1), got {ratio}")
    if target_macs is not None and not 0 < target_macs <= 1:
        raise PolicyError(f"--target-macs must be in (0, 1], got {target_macs}")
    if target_latency_ms is not None and not target_latency_ms > 0:
        raise PolicyError(f"--target-latency must be positive, got {target_latency_ms}")
    if target_speedup is not None and not target_speedup > 1:
        raise PolicyError(f"--target-speedup must be above 1, got {target_speedup}")
    if max_layer_ratio is not None and not 0 <= max_layer_ratio <= 1:
        raise PolicyError(f"--max-layer-ratio must be in [0, 1], got {max_layer_ratio}")
    if round_to < 1 or min_channels < 1:
        raise PolicyError("--round-to and --min-channels must be at least 1")


def cli_targets(ratio: float | None, target_macs: float | None, target_latency_ms: float | None,
                target_speedup: float | None, **limits) -> float | None:
    """``prune``'s target: :data:`DEFAULT_RATIO` when none is given; ``--ratio 0`` is refused
    (it removes nothing, so there is nothing to prune or write). Returns the ratio to use."""
    if ratio is None and target_macs is None and target_latency_ms is None and target_speedup is None:
        ratio = DEFAULT_RATIO
    if ratio is not None and not 0 <= ratio < 1:
        raise PolicyError(f"--ratio must be in (0, 1), got {ratio}")
    if ratio == 0:
        raise PolicyError("--ratio 0 removes nothing: the model would be written unchanged",
                          "give a ratio above 0, e.g. --ratio 0.3; `compress inspect` shows the model as it is")
    check_targets(ratio, target_macs, target_latency_ms, target_speedup, **limits)
    return ratio


def check_device_name(device: str) -> None:
    """A ``--device`` of a form torch knows; whether that GPU exists is
    :func:`compress.devices.resolve_device`'s to say, once torch is imported."""
    if not DEVICE_NAME.fullmatch(str(device)):
        raise UsageError(f"unknown device {str(device)!r}", "use auto, cpu, cuda or cuda:N")


def check_label_classes(csv_path: str, labels: list[int], classes: int) -> None:
    """Every class index of the calibration images' labels names one of the model's ``classes``
    outputs; else a one-line error naming the CSV and the first row that does not (checked before
    the importance pass, which would fail deep inside the loss)."""
    import csv

    from compress.calibrate.errors import CalibrationError  # exit 4, like every other labels CSV error

    if not labels or max(labels) < classes:
        return
    where, value = "", max(labels)
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        column = [h.strip().lower() for h in next(reader, [])].index("class_index")
        for number, rec in enumerate(reader, start=2):
            try:
                index = int(rec[column].strip())
            except (IndexError, ValueError):
                continue  # read_labels_csv has already refused unreadable rows
            if index >= classes:
                where, value = f" line {number} ({','.join(rec)})", index
                break
    raise CalibrationError(f"labels CSV {csv_path}{where}: class_index {value}, but the model has {classes} outputs "
                     f"(classes 0-{classes - 1})", "fix the CSV, or check that it belongs to this model")
