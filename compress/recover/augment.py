"""Batch-level augmentation of preprocessed (normalised) image tensors for distillation.

Everything works on whole batches with tensor ops, so it runs wherever the batch lives (CPU or
GPU). Randomness is drawn on the CPU from a ``torch.Generator`` and then moved to the batch's
device, so a seed gives the same augmented batches on every device.

- ``crop-flip``: pad by ``H // 8`` (reflect or zero padding), crop back to ``H x W`` at a random
  offset per sample, flip half of the samples horizontally. The CIFAR recipe.
- ``rrc-flip``: random-resized crop (area and aspect ratio per sample, bilinear resample back to
  ``H x W``) plus flip; for larger inputs (ImageNet-style models).
- CutMix: with probability ``p`` per batch, paste a random box from a shuffled copy of the batch.
  In distillation the teacher labels the mixed image, so no label mixing is needed.

Padding happens after normalisation: "zeros" pads with the dataset mean colour, not black.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

AUGMENTS = ("auto", "crop-flip", "rrc-flip", "none")
PAD_MODES = ("reflect", "zeros")
RRC_SCALE = (0.25, 1.0)  # milder than ImageNet training's 0.08: the student only has to follow
RRC_RATIO = (3 / 4, 4 / 3)
AUTO_RRC_MIN_SIZE = 64  # "auto" uses crop-flip up to this input size, rrc-flip above


def resolve_kind(kind: str, input_size: int) -> str:
    """``auto`` -> ``crop-flip`` for small inputs (<= 64 px), ``rrc-flip`` for larger ones."""
    if kind not in AUGMENTS:
        raise ValueError(f"unknown augmentation {kind!r}: choose one of {', '.join(AUGMENTS)}")
    if kind == "auto":
        return "crop-flip" if input_size <= AUTO_RRC_MIN_SIZE else "rrc-flip"
    return kind


def _check_batch(x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"augmentation expects a (N, C, H, W) batch, got shape {tuple(x.shape)}")


def random_crop_flip(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    pad: int | None = None,
    pad_mode: str = "reflect",
    flip: bool = True,
) -> torch.Tensor:
    """Per-sample random crop of the padded batch (pad = H // 8 by default) and random h-flip."""
    _check_batch(x)
    if pad_mode not in PAD_MODES:
        raise ValueError(f"unknown pad mode {pad_mode!r}: choose one of {', '.join(PAD_MODES)}")
    n, _, h, w = x.shape
    pad = max(0, min(h, w) // 8) if pad is None else int(pad)
    if pad_mode == "reflect":
        pad = min(pad, h - 1, w - 1)  # reflect padding must be smaller than the image
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    if pad > 0:
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect" if pad_mode == "reflect" else "constant")
    rows = oy[:, None] + torch.arange(h)  # (N, H) source row of each output row
    cols = ox[:, None] + torch.arange(w)  # (N, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)  # a flip is a reversed column index
    dev = x.device
    batch = torch.arange(n, device=dev)[:, None, None]
    out = x[batch, :, rows.to(dev)[:, :, None], cols.to(dev)[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def random_resized_crop_flip(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    scale: tuple[float, float] = RRC_SCALE,
    ratio: tuple[float, float] = RRC_RATIO,
    flip: bool = True,
) -> torch.Tensor:
    """Per-sample random-resized crop (bilinear, back to H x W) and random h-flip."""
    _check_batch(x)
    n = x.shape[0]
    area = scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=generator)
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * torch.rand(n, generator=generator)
    r = torch.exp(log_r)
    wf = torch.sqrt(area * r).clamp(max=1.0)  # crop width as a fraction of the image width
    hf = torch.sqrt(area / r).clamp(max=1.0)
    cx = (1 - wf) * (2 * torch.rand(n, generator=generator) - 1)  # centre in [-1, 1] coordinates
    cy = (1 - hf) * (2 * torch.rand(n, generator=generator) - 1)
    sign = torch.ones(n)
    if flip:
        sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = wf * sign
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = hf
    theta[:, 1, 2] = cy
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def cutmix(x: torch.Tensor, generator: torch.Generator, probability: float) -> torch.Tensor:
    """With ``probability``, paste one random box (area ~ U(0, 1)) from a shuffled batch copy."""
    _check_batch(x)
    n, _, h, w = x.shape
    apply = torch.rand(1, generator=generator).item() < probability
    if not apply or n < 2:
        return x
    cut = math.sqrt(torch.rand(1, generator=generator).item())  # side fraction; area ~ U(0, 1)
    ch, cw = int(round(h * cut)), int(round(w * cut))
    cy = int(torch.randint(0, h, (1,), generator=generator))
    cx = int(torch.randint(0, w, (1,), generator=generator))
    y0, y1 = max(cy - ch // 2, 0), min(cy + (ch - ch // 2), h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + (cw - cw // 2), w)
    perm = torch.randperm(n, generator=generator).to(x.device)
    out = x.clone()
    out[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    return out


class BatchAugment:
    """Callable batch augmenter: geometric augmentation (``kind``) then CutMix (``cutmix`` prob).

    ``kind`` is one of ``AUGMENTS``; ``auto`` is resolved from the first batch's height.
    """

    def __init__(self, kind: str = "auto", *, cutmix: float = 0.0, pad_mode: str = "reflect", seed: int = 0):
        if kind not in AUGMENTS:
            raise ValueError(f"unknown augmentation {kind!r}: choose one of {', '.join(AUGMENTS)}")
        if pad_mode not in PAD_MODES:
            raise ValueError(f"unknown pad mode {pad_mode!r}: choose one of {', '.join(PAD_MODES)}")
        if not 0.0 <= cutmix <= 1.0:
            raise ValueError(f"cutmix probability must be in [0, 1], got {cutmix}")
        self.kind = kind
        self.cutmix = float(cutmix)
        self.pad_mode = pad_mode
        self.generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch(x)
        kind = resolve_kind(self.kind, min(x.shape[-2:]))
        if kind == "crop-flip":
            x = random_crop_flip(x, self.generator, pad_mode=self.pad_mode)
        elif kind == "rrc-flip":
            x = random_resized_crop_flip(x, self.generator)
        if self.cutmix > 0:
            x = cutmix(x, self.generator, self.cutmix)
        return x
