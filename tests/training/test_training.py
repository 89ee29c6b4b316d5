"""Sampler, losses, augmentation, schedule, and the loop (loss goes down, resume is exact)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from metricattack.data.base import read_image
from metricattack.errors import InputError
from metricattack.models import build_model, load_checkpoint
from metricattack.training.augment import TrainAugment
from metricattack.training.losses import CrossEntropyLabelSmooth, ReIDLoss, TripletLoss
from metricattack.training import loop
from metricattack.training.loop import TrainConfig, train_model
from metricattack.training.samplers import RandomIdentitySampler, relabel
from metricattack.training.schedule import build_scheduler, lr_factor

PIDS = [pid for pid in range(10) for _ in range(pid % 4 + 1)]  # identities with 1 to 4 images


def test_sampler_batches_are_p_identities_by_k_images():
    sampler = RandomIdentitySampler(PIDS, batch_size=8, num_instances=2, seed=0)
    batches = sampler.batches()
    assert len(sampler) == 8 * len(batches)
    for batch in batches:
        pids = [PIDS[i] for i in batch]
        assert len(batch) == 8 and len(set(pids)) == 4
        assert all(pids.count(p) == 2 for p in set(pids))
    assert {PIDS[i] for b in batches for i in b} == set(PIDS)


def test_sampler_is_reproducible_and_changes_with_the_epoch():
    first = list(RandomIdentitySampler(PIDS, 8, 2, seed=1))
    assert first == list(RandomIdentitySampler(PIDS, 8, 2, seed=1))
    sampler = RandomIdentitySampler(PIDS, 8, 2, seed=1)
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_sampler_rejects_bad_sizes():
    with pytest.raises(InputError, match="multiple of --num-instances"):
        RandomIdentitySampler(PIDS, 7, 2)
    with pytest.raises(InputError, match="needs 20 identities per batch"):
        RandomIdentitySampler(PIDS, 40, 2)


def test_relabel():
    assert relabel([7, 3, 7, 9]) == ([1, 0, 1, 2], {3: 0, 7: 1, 9: 2})


def test_label_smoothing_matches_torch():
    logits, labels = torch.randn(6, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 4, 0])
    ours = CrossEntropyLabelSmooth(5, 0.1)(logits, labels)
    assert torch.isclose(ours, F.cross_entropy(logits, labels, label_smoothing=0.1))
    by_hand = -sum(((0.9 if c == labels[i] else 0) + 0.02) * F.log_softmax(logits[i], 0)[c] for i in range(6) for c in range(5)) / 6
    assert torch.isclose(ours, by_hand)


@pytest.mark.parametrize("margin", [0.3, 0.0])
def test_batch_hard_triplet_matches_a_loop(margin):
    features, labels = torch.randn(8, 4, dtype=torch.float64), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    total = 0.0
    for a in range(8):
        d = [float((features[a] - features[j]).norm()) for j in range(8)]
        positive = max(d[j] for j in range(8) if labels[j] == labels[a])
        negative = min(d[j] for j in range(8) if labels[j] != labels[a])
        total += max(0.0, positive - negative + margin) if margin > 0 else math.log1p(math.exp(positive - negative))
    assert float(TripletLoss(margin)(features, labels)) == pytest.approx(total / 8, abs=1e-6)


def test_unknown_loss_kind():
    with pytest.raises(InputError, match="unknown loss 'arcface'"):
        ReIDLoss("arcface", 3)


def test_augment_keeps_shape_and_range_and_is_reproducible():
    images = torch.rand(6, 3, 32, 16)
    augment = TrainAugment()
    first = augment(images, torch.Generator().manual_seed(0))
    assert first.shape == images.shape and 0 <= first.min() and first.max() <= 1
    assert torch.equal(first, augment(images, torch.Generator().manual_seed(0)))
    assert not torch.equal(first, augment(images, torch.Generator().manual_seed(1)))


def test_erasing_changes_only_a_rectangle():
    images = torch.zeros(20, 3, 32, 16)
    erased = TrainAugment(flip=False, pad=0, erase_p=1.0)(images, torch.Generator().manual_seed(0))
    for image in erased:
        rows, cols = (image != 0).any(dim=0).nonzero(as_tuple=True)
        assert len(rows) > 0
        box = image[:, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert (box != 0).any(dim=0).float().mean() > 0.99  # one filled rectangle


@pytest.mark.parametrize(
    "iteration,kind,expected",
    [(0, "step", 0.1), (5, "step", 0.1 + 0.9 * 0.5), (10, "step", 1.0), (30, "step", 0.1), (45, "step", 0.01),
     (10, "cosine", 1.0), (25, "cosine", 0.5), (40, "cosine", 0.0)],
)  # fmt: skip
def test_schedule_factor_by_hand(iteration, kind, expected):
    # 5 steps per epoch, 2 warm-up epochs, 8 epochs, step milestones at epochs 6 and 9
    assert lr_factor(iteration, kind, 8, 2, 5, (6, 9), 0.1) == pytest.approx(expected)


def test_scheduler_drives_the_optimizer():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = build_scheduler(optimizer, "cosine", 8, 2, 5)
    for _ in range(25):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5)
    with pytest.raises(InputError, match="unknown schedule 'linear'"):
        build_scheduler(optimizer, "linear", 8, 2, 5)


def mean_loss(model, data, labels_of):
    model = copy.deepcopy(model)  # a train-mode forward would move the BN statistics of the original
    criterion = ReIDLoss("softmax+triplet", model.classifier.out_features)
    images = torch.stack([read_image(s.path) for s in data.train])
    labels = torch.tensor([labels_of[s.pid] for s in data.train])
    model.train()
    with torch.no_grad():
        logits, features = model(images)
        return float(criterion(logits, features, labels)[0])


def test_training_lowers_the_loss_and_resume_is_exact(tiny_data, tmp_path, monkeypatch):
    _, labels_of = relabel([s.pid for s in tiny_data.train])
    config = TrainConfig(epochs=3, batch_size=16, num_instances=4, lr=3e-3, warmup_epochs=1, seed=0)

    def fresh():
        torch.manual_seed(0)
        return build_model("compact", num_classes=tiny_data.num_train_pids, input_size=(32, 16))

    model = fresh()
    before = mean_loss(model, tiny_data, labels_of)
    train_model(model, tiny_data.train, config, tmp_path / "full", torch.device("cpu"), progress=False)
    assert mean_loss(model, tiny_data, labels_of) < before
    # Interrupt the same run once epoch 2 is saved, then resume: the same weights as the uninterrupted run.
    saved = []

    def write_then_interrupt(path, write):
        loop.atomic_write.__wrapped__(path, write)
        saved.append(path)
        if len(saved) == 2:
            raise KeyboardInterrupt

    write_then_interrupt.__wrapped__ = loop.atomic_write
    monkeypatch.setattr(loop, "atomic_write", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train_model(fresh(), tiny_data.train, config, tmp_path / "split", torch.device("cpu"), progress=False)
    monkeypatch.setattr(loop, "atomic_write", write_then_interrupt.__wrapped__)
    resumed = fresh()
    train_model(resumed, tiny_data.train, config, tmp_path / "split", torch.device("cpu"), resume=True, progress=False)
    loaded, meta = load_checkpoint(tmp_path / "split" / "model")
    assert meta["epoch"] == 3
    for key, value in model.state_dict().items():
        assert torch.allclose(value, resumed.state_dict()[key], atol=1e-6), key
        assert torch.allclose(value, loaded.state_dict()[key], atol=1e-6), key
