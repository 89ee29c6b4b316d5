"""The training loop: the loss goes down, and an interrupted run resumes to the same weights."""

from __future__ import annotations

import copy

import pytest
import torch

from metricattack.data.base import read_image
from metricattack.models import build_model, load_checkpoint
from metricattack.training import loop
from metricattack.training.losses import ReIDLoss
from metricattack.training.loop import TrainConfig, train_model
from metricattack.training.samplers import relabel


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
