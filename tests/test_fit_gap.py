"""compress.recover.fit_gap: the training-image sample and the significance of a training vs held-out gap."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from compress.recover.fit_gap import significant_gap, train_sample


def test_sample_of_a_tensor_is_evenly_spaced_and_bounded():
    images = torch.arange(10.0).view(10, 1, 1, 1)
    assert torch.equal(train_sample(images, 100), images)  # fewer than asked: all of them
    got = train_sample(images, 4).flatten().tolist()
    assert got == [0.0, 3.0, 6.0, 9.0]  # first to last, evenly spaced, no repeats
    assert train_sample(images[:0], 4) is None and train_sample(images, 0) is None


def test_sample_of_a_loader_stops_at_n_and_takes_tensors_out_of_tuples():
    images = torch.arange(10.0).view(10, 1, 1, 1)
    loader = DataLoader(TensorDataset(images, torch.arange(10)), batch_size=4)
    got = train_sample(loader, 6)
    assert got.shape[0] == 6 and got.flatten().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert train_sample(DataLoader(images, batch_size=3), 100).shape[0] == 10


def test_gap_counts_only_beyond_the_sampling_error():
    # the ResNet-32 case: 94 % of 1,000 training images vs 87 % of 200 held-out ones
    assert significant_gap(0.94, 1000, 0.87, 200)
    # 2 points on 200 held-out images is within the noise (standard error ~2.3 points)
    assert not significant_gap(0.94, 1000, 0.92, 200)
    # the same 7-point gap on 40 held-out images is not significant either
    assert not significant_gap(0.94, 1000, 0.87, 40)
    # held-out better than training, perfect on both, or too few images: never
    assert not significant_gap(0.80, 1000, 0.90, 200)
    assert not significant_gap(1.0, 1000, 1.0, 200)
    assert not significant_gap(1.0, 1000, 0.0, 10)


def test_recovery_reports_training_agreement_and_says_when_images_bind():
    from compress.recover.fit_gap import fit_on_training_images

    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    student.load_state_dict(teacher.state_dict())  # agrees on every training image
    train = torch.randn(200, 1, 2, 2)
    said: list[str] = []

    def check(held_agreement: float, n_held: int) -> dict:
        said.clear()
        return fit_on_training_images(student, teacher, train, held_agreement, {"distill": 200, "holdout": n_held},
                                      say=said.append)

    fit = check(0.80, 100)
    assert fit == {"agreement_train": 1.0, "kl_train": fit["kl_train"], "agreement_train_images": 200}
    assert abs(fit["kl_train"]) < 1e-6
    assert len(said) == 1 and "100.0% of 200 training images but 80.0% of 100 held-out" in said[0]
    assert "more unlabeled images" in said[0]
    assert check(0.99, 100)["agreement_train"] == 1.0 and said == []  # within the noise: no hint
    assert check(0.80, 10) and said == []  # too few held-out images to judge
