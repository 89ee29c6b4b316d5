"""Shared fixtures: a tiny synthetic data set and a tiny model trained on it for a few steps."""

from __future__ import annotations

import signal

import pytest
import torch

from metricattack.data import load_dataset
from metricattack.data.synthetic import SyntheticConfig, generate
from metricattack.models import build_model
from metricattack.training.loop import TrainConfig, train_model

TINY = SyntheticConfig(train_ids=12, test_ids=8, cameras=3, height=64, width=32, seed=3)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Keep tests out of the user's cache folder."""
    monkeypatch.setenv("METRICATTACK_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def sigint_as_in_a_terminal():
    """During the test SIGINT raises KeyboardInterrupt, as in a process started from a terminal, whatever the
    launch context (a background job of a script starts with SIGINT ignored); then the handler from before is back."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """A tiny synthetic Market-1501 tree (written once per session)."""
    return generate(tmp_path_factory.mktemp("data") / "tiny", TINY, progress=False)


@pytest.fixture(scope="session")
def tiny_data(tiny_root):
    """The tiny tree parsed by the Market-1501 loader."""
    return load_dataset("market1501", tiny_root)


@pytest.fixture(scope="session")
def tiny_model(tiny_data, tmp_path_factory):
    """A compact model (64x32 input) trained for a few epochs on the tiny training split (about 50 % mAP)."""
    torch.manual_seed(0)
    model = build_model("compact", num_classes=tiny_data.num_train_pids, input_size=(64, 32))
    config = TrainConfig(epochs=8, batch_size=16, num_instances=4, lr=3e-3, warmup_epochs=1, seed=0)
    train_model(model, tiny_data.train, config, tmp_path_factory.mktemp("train"), torch.device("cpu"), progress=False)
    return model.eval()


def synth_root(tmp_path_factory, name: str, seed: int, options: list[str]):
    """A synthetic Market-1501 tree written by ``metricattack synth`` with the given size options."""
    from metricattack.cli import main

    root = tmp_path_factory.mktemp(name) / "data"
    assert main(["synth", "--out", str(root), "--seed", str(seed), "--no-progress", *options]) == 0
    return root


def random_checkpoint(tmp_path_factory):
    """A compact model (32x16 input) with random weights, saved as our checkpoint."""
    from metricattack.models import save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "rand", build_model("compact", input_size=(32, 16)))
