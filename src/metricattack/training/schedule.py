"""Learning-rate schedule: linear warm-up, then step decay or cosine, stepped every iteration."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from metricattack.errors import InputError

SCHEDULES = ("step", "cosine")


def lr_factor(iteration: int, kind: str, epochs: int, warmup_epochs: int, steps_per_epoch: int,
              milestones: Sequence[int], gamma: float) -> float:  # fmt: skip
    """The multiplier of the base LR at an iteration: 0.1 -> 1 linearly during warm-up, then
    gamma^(milestones passed) for step, or (1 + cos(pi t)) / 2 over the remaining epochs for cosine."""
    epoch = iteration / max(steps_per_epoch, 1)
    if epoch < warmup_epochs:
        return 0.1 + 0.9 * epoch / warmup_epochs
    if kind == "step":
        return gamma ** sum(epoch >= m for m in milestones)
    progress = (epoch - warmup_epochs) / max(epochs - warmup_epochs, 1e-9)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def build_scheduler(optimizer: torch.optim.Optimizer, kind: str, epochs: int, warmup_epochs: int,
                    steps_per_epoch: int, milestones: Sequence[int] = (), gamma: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:  # fmt: skip
    """A LambdaLR following ``lr_factor``."""
    if kind not in SCHEDULES:
        raise InputError(f"--scheduler: unknown schedule {kind!r} (expected one of {', '.join(SCHEDULES)})")
    milestones = tuple(milestones)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: lr_factor(it, kind, epochs, warmup_epochs, steps_per_epoch, milestones, gamma)
    )
