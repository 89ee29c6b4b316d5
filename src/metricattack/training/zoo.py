"""Train a zoo model on first use (``models/zoo.py`` lists them) and cache it; resumable per epoch."""

from __future__ import annotations

from dataclasses import asdict

import torch

from metricattack.data.base import ReIDData
from metricattack.models.checkpoints import save_checkpoint
from metricattack.models.reid import ReIDModel, build_model
from metricattack.models.zoo import load_zoo_model, zoo_available, zoo_checkpoint, zoo_entry
from metricattack.models.retrieval import evaluate_model
from metricattack.system.runtime import seed_everything
from metricattack.training.loop import CHECKPOINT_NAME, TrainConfig, train_model

TRAINING_DIR = "training"  # inside the model's cache folder: per-epoch checkpoints, so training resumes


def obtain_zoo_model(name: str, data: ReIDData, device: torch.device, train_command: str, progress: bool = True) -> tuple[ReIDModel, dict]:
    """The zoo model ``name``: loaded when on disk, else trained on ``device`` with ``data`` (the default synthetic
    data, as its recipe says) exactly as ``train_command`` (the ``metricattack train`` command recorded in its
    metadata) would, evaluated, and cached."""
    if zoo_available(name):
        return load_zoo_model(name)
    entry = zoo_entry(name)
    config = TrainConfig(**entry.train_options)
    seed_everything(config.seed)
    model = build_model(entry.arch, num_classes=data.num_train_pids, **entry.model_options)
    folder = zoo_checkpoint(name).parent
    metadata = {"dataset": data.name, "train_command": train_command, "zoo_name": name}
    train_model(model, data.train, config, folder / TRAINING_DIR, device, resume=True, progress=progress, metadata=metadata)
    metrics = evaluate_model(model, data, device, progress=False)
    save_checkpoint(folder / CHECKPOINT_NAME, model, epoch=config.epochs, train_config=asdict(config),
                    clean_metrics=metrics.as_dict(), **metadata)  # fmt: skip
    return load_zoo_model(name)

