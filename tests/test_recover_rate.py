"""Recovery throughput: the step loop's training images per second, in the result and the run record."""

from __future__ import annotations

from compress.recover import DistillConfig, distill
from tests.distill_data import FAST


def test_distillation_reports_the_images_per_second_of_its_step_loop(pair):
    student, teacher, train, hold = pair
    res = distill(student, teacher, train, hold, DistillConfig(**{**FAST, "steps": 12, "eval_every": 6}),
                  progress=False)
    assert res.steps == 12 and res.images_per_second is not None
    # 12 steps of 32 images: the rate is those images over a loop that took no longer than the whole run
    assert res.images_per_second >= 12 * 32 / res.seconds

