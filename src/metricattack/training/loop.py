"""The training loop: P x K batches, augmentation, softmax and/or triplet loss, a checkpoint every epoch."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import torch
from tqdm.auto import tqdm

from metricattack.system.atomic import atomic_write
from metricattack.data.base import Sample
from metricattack.errors import InputError, NumericalError
from metricattack.data.images import read_images
from metricattack.models.checkpoints import (
    checkpoint_paths,
    load_safetensors,
    load_state_strict,
    load_torch_file,
    save_checkpoint,
)
from metricattack.models.reid import ReIDModel
from metricattack.training.augment import TrainAugment
from metricattack.training.losses import ReIDLoss
from metricattack.training.samplers import RandomIdentitySampler, relabel
from metricattack.training.schedule import build_scheduler

CHECKPOINT_NAME = "model"
STATE_NAME = "train_state.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (BoT-style defaults scaled for small models)."""

    epochs: int = 30
    batch_size: int = 64
    num_instances: int = 4
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    optimizer: str = "adam"
    scheduler: str = "cosine"
    warmup_epochs: int = 3
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    loss: str = "softmax+triplet"
    label_smoothing: float = 0.1
    margin: float = 0.3
    flip: bool = True
    erase_p: float = 0.5
    seed: int = 0

    def validate(self) -> None:
        """One-line errors for options out of range."""
        for name in ("epochs", "batch_size", "num_instances"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise InputError(f"--lr must be positive, got {self.lr}")
        if self.optimizer not in ("adam", "sgd"):
            raise InputError(f"--optimizer: unknown optimizer {self.optimizer!r} (expected adam or sgd)")


class BatchObjective(Protocol):
    """A per-batch training objective (a defense); the loop stays the same for every one."""

    def prepare(
        self, model: ReIDModel, images: torch.Tensor, labels: torch.Tensor, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Once before training: the 8-bit training images (N,3,H,W) and labels (N,) to sample from."""
        ...

    def __call__(
        self, model: ReIDModel, inputs: torch.Tensor, labels: torch.Tensor, criterion: ReIDLoss, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of a batch (inputs in [0,1], model in train mode) and its parts for logging."""
        ...


def standard_loss(
    model: ReIDModel, inputs: torch.Tensor, labels: torch.Tensor, criterion: ReIDLoss
) -> tuple[torch.Tensor, dict[str, float]]:
    """The usual objective: ``criterion`` on the model's train-mode outputs for ``inputs``."""
    logits, features = model(inputs)
    return criterion(logits, features, labels)


def build_optimizer(model: ReIDModel, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam or SGD (momentum 0.9) over the trainable parameters, with weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay, nesterov=True)


def check_finite_step(model: ReIDModel, loss: torch.Tensor, where: str, out_dir: Path) -> None:
    """Stop with one line when the loss or a gradient is NaN or infinite (before the step spoils the weights)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])) if grads else loss
    if not bool(torch.isfinite(loss.detach()) & torch.isfinite(grad_norm)):
        what = "the loss" if not torch.isfinite(loss.detach()) else "a gradient"
        raise NumericalError(
            f"training {where}: {what} is not finite (NaN or inf); lower --lr or check the data "
            f"(the checkpoints of the finished epochs in {out_dir} are intact)"
        )


def train_model(
    model: ReIDModel,
    samples: list[Sample],
    config: TrainConfig,
    out_dir: str | Path,
    device: torch.device,
    resume: bool = False,
    image_size: tuple[int, int] | None = None,
    workers: int = 0,
    progress: bool = True,
    metadata: dict | None = None,
    objective: BatchObjective | None = None,
) -> ReIDModel:
    """Train ``model`` on ``samples`` (pids relabelled to 0..C-1); checkpoints to ``out_dir`` every epoch.

    With ``resume`` the run continues after the last finished epoch and, since the sampler and the
    augmentation are seeded per epoch, ends with the same weights as an uninterrupted run.
    ``objective`` replaces the usual loss per batch (a defense, see ``metricattack.defenses``); its
    ``prepare`` may rewrite the training set once, before the sampler is built.
    """
    config.validate()
    if not samples:
        raise InputError("the training split is empty (expected bounding_box_train/ or train/ images)")
    out_dir = Path(out_dir)
    labels, _ = relabel([s.pid for s in samples])
    labels = torch.tensor(labels)
    num_classes = int(labels.max()) + 1
    if model.classifier is None or model.classifier.out_features != num_classes:
        raise InputError(f"the model has {model.spec.num_classes} classes but the training split has {num_classes} identities")
    model.to(device)
    images = read_images(samples, 256, image_size, workers, progress)  # sampled from memory every epoch
    if objective is not None:
        images, labels = objective.prepare(model, images, labels, device)
    sampler = RandomIdentitySampler(labels.tolist(), config.batch_size, config.num_instances, seed=config.seed)
    criterion = ReIDLoss(config.loss, num_classes, label_smoothing=config.label_smoothing, margin=config.margin)
    augment = TrainAugment(flip=config.flip, erase_p=config.erase_p)
    optimizer = build_optimizer(model, config)
    steps_per_epoch = len(sampler.batches())
    scheduler = build_scheduler(
        optimizer, config.scheduler, config.epochs, config.warmup_epochs, steps_per_epoch, config.milestones, config.gamma
    )
    start_epoch = 0
    state_path = out_dir / STATE_NAME
    if resume and state_path.is_file():
        state = load_torch_file(state_path)
        if not isinstance(state, dict) or not isinstance(state.get("epoch"), int) or not all(
            isinstance(state.get(key), dict) for key in ("optimizer", "scheduler")
        ):
            raise InputError(f"{state_path}: expected the training state metricattack train writes (epoch, optimizer, scheduler)")
        load_state_strict(model, load_safetensors(checkpoint_paths(out_dir / CHECKPOINT_NAME)[0]), out_dir)
        try:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{state_path}: does not fit this model and --optimizer ({exc.__class__.__name__}: {exc})") from None
        start_epoch = state["epoch"] + 1
    for epoch in range(start_epoch, config.epochs):
        model.train()
        sampler.set_epoch(epoch)
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        batches = sampler.batches()
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False)
        totals: dict[str, float] = {}
        for step, batch in enumerate(bar):
            batch = torch.tensor(batch)
            inputs = augment(images[batch].float().div(255), generator).to(device)
            if objective is None:
                loss, parts = standard_loss(model, inputs, labels[batch].to(device), criterion)
            else:
                loss, parts = objective(model, inputs, labels[batch].to(device), criterion, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            check_finite_step(model, loss, f"epoch {epoch + 1}/{config.epochs}, batch {step + 1}", out_dir)
            optimizer.step()
            scheduler.step()
            for name, value in parts.items():
                totals[name] = totals.get(name, 0.0) + value
            bar.set_postfix({k: f"{v / (step + 1):.3f}" for k, v in totals.items()})
        if progress:
            summary = " ".join(f"{k} {v / max(len(batches), 1):.3f}" for k, v in totals.items())
            tqdm.write(f"epoch {epoch + 1}/{config.epochs}: {summary} lr {scheduler.get_last_lr()[0]:.2e}")
        save_checkpoint(out_dir / CHECKPOINT_NAME, model, train_config=asdict(config), epoch=epoch + 1, **(metadata or {}))
        state = {"epoch": epoch, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        atomic_write(state_path, lambda tmp: torch.save(state, tmp))
    optimizer.zero_grad(set_to_none=True)  # leave no gradients behind on the returned model
    return model.eval()
