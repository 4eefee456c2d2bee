"""``compress.prune_model``: the in-memory entry point. ``compress.prune`` (the CLI's pipeline) runs the same
stages through it, so a module and the decoded images of a folder give what the checkpoint and the folder give."""

from __future__ import annotations

import pytest
import torch

import compress
from benchmarks.seg_zoo import random_images
from compress.calibrate import ImageDataset, scan_folder
from compress.api import prune
from compress.errors import UsageError


def test_in_memory_equals_the_checkpoint_and_folder_run(tmp_path):
    from compress.archs.digits import digitnet
    from compress.models.loading import load_model

    torch.manual_seed(0)
    ckpt = tmp_path / "digits.pt"
    torch.save(digitnet().state_dict(), ckpt)
    folder = random_images(tmp_path / "imgs", 24, 32)
    on_disk = prune(str(ckpt), str(folder), arch="digits", ratio=0.5, recover=False, progress=False,
                             quiet=True, out=str(tmp_path / "out"), device="cpu")
    loaded = load_model(str(ckpt), arch="digits")
    dataset = ImageDataset(scan_folder(folder).paths, loaded.preprocess())
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])  # sorted files, decoded as the run does
    in_memory = compress.prune_model(loaded.model, images, ratio=0.5, recover=False, device="cpu",
                                     preprocess=loaded.preprocess())
    assert in_memory.out is None and on_disk.out == tmp_path / "out"
    assert in_memory.widths == on_disk.widths and in_memory.task.name == on_disk.task.name == "classify"
    mine, theirs = in_memory.model.state_dict(), on_disk.model.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    a, b = in_memory.summary.to_json(), on_disk.summary.to_json()
    for key in ("macs_after", "params_after", "channels_removed", "widths", "calibration", "bn_recalibrated"):
        assert a[key] == b[key], key
    assert a["checkpoint"] == "<in memory>" and not (tmp_path / "<in memory>").exists()


@pytest.mark.parametrize("images", [torch.zeros(3, 32, 32), torch.zeros(4, 3, 32, 32, dtype=torch.uint8), [1, 2]])
def test_images_that_are_not_a_float_batch_are_refused(images):
    from compress.archs.digits import digitnet

    with pytest.raises(UsageError, match="images must be a float \\(N, C, H, W\\) tensor|images are torch.uint8"):
        compress.prune_model(digitnet(), images)
