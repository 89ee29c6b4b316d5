"""Train a zoo model on first use (``models/zoo.py`` lists them) and cache it; resumable per epoch."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import save_file

from metricattack.system.atomic import atomic_write
from metricattack.data.base import ReIDData
from metricattack.models.checkpoints import load_checkpoint, save_checkpoint
from metricattack.models.reid import ReIDModel, build_model
from metricattack.models.zoo import SHIPPED_DIR, load_zoo_model, zoo_available, zoo_checkpoint, zoo_entry
from metricattack.models.retrieval import evaluate_model
from metricattack.system.runtime import seed_everything
from metricattack.training.loop import CHECKPOINT_NAME, TrainConfig, train_model

TRAINING_DIR = "training"  # inside the model's cache folder: per-epoch checkpoints, so training resumes


def obtain_zoo_model(name: str, data: ReIDData, device: torch.device, progress: bool = True) -> tuple[ReIDModel, dict]:
    """The zoo model ``name``: loaded when on disk, else trained on ``data`` (the default synthetic data, as
    its command says) exactly as ``metricattack train`` would, evaluated, and cached."""
    if zoo_available(name):
        return load_zoo_model(name)
    entry = zoo_entry(name)
    config = TrainConfig(**entry.train_options)
    seed_everything(config.seed)
    model = build_model(entry.arch, num_classes=data.num_train_pids, **entry.model_options)
    folder = zoo_checkpoint(name).parent
    metadata = {"dataset": data.name, "train_command": entry.command, "zoo_name": name}
    train_model(model, data.train, config, folder / TRAINING_DIR, device, resume=True, progress=progress, metadata=metadata)
    metrics = evaluate_model(model, data, device, progress=False)
    save_checkpoint(folder / CHECKPOINT_NAME, model, epoch=config.epochs, train_config=asdict(config),
                    clean_metrics=metrics.as_dict(), **metadata)  # fmt: skip
    return load_zoo_model(name)


def export_fp16(name: str, checkpoint: str | Path, data: ReIDData, device: torch.device) -> Path:
    """Write a trained checkpoint of zoo model ``name`` as fp16 safetensors into the package's zoo folder, with
    the clean metrics measured with the fp16 weights (loaded back into fp32), so shipping it moves no number."""
    model, meta = load_checkpoint(checkpoint)
    half = {key: (value.half() if value.is_floating_point() else value) for key, value in model.state_dict().items()}
    model.load_state_dict(half)  # the fp32 model now holds exactly the fp16 values
    metrics = evaluate_model(model, data, device, progress=False)
    target = SHIPPED_DIR / f"{name}.safetensors"
    kept = {key: value for key, value in meta.items() if key not in ("spec", "format_version", "feature_dim")}
    save_checkpoint(target, model, **{**kept, "clean_metrics": metrics.as_dict(), "train_command": zoo_entry(name).command,
                                      "zoo_name": name, "weights_dtype": "float16"})  # fmt: skip
    atomic_write(target, lambda tmp: save_file({k: v.contiguous() for k, v in half.items()}, str(tmp), metadata={"format": "pt"}))
    return target
