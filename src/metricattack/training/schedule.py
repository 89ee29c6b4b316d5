"""Learning-rate schedule: linear warm-up, then step decay or cosine, stepped every iteration."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from metricattack.errors import InputError

SCHEDULES = ("step", "cosine")
WARMUP_START = 0.1  # the warm-up starts at 0.1 x the base LR (BoT's warmup_factor)


def lr_factor(
    iteration: int,
    kind: str,
    epochs: int,
    warmup_epochs: int,
    steps_per_epoch: int,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
) -> float:
    """The multiplier of the base LR after ``iteration`` optimiser steps.

    With e = iteration / steps_per_epoch (fractional epochs done): 0.1 + 0.9 e / warmup_epochs while
    e < warmup_epochs; then for ``step`` gamma^(number of milestones <= e), for ``cosine``
    (1 + cos(pi t)) / 2 with t = (e - warmup_epochs) / (epochs - warmup_epochs), reaching 0 at the end.
    """
    epoch = iteration / steps_per_epoch
    if epoch < warmup_epochs:
        return WARMUP_START + (1 - WARMUP_START) * epoch / warmup_epochs
    if kind == "step":
        return gamma ** sum(epoch >= milestone for milestone in milestones)
    progress = min((epoch - warmup_epochs) / (epochs - warmup_epochs), 1.0) if epochs > warmup_epochs else 1.0
    return 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    kind: str,
    epochs: int,
    warmup_epochs: int,
    steps_per_epoch: int,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR following ``lr_factor``, to be stepped once per iteration (not per epoch).

    A warm-up as long as the run (``warmup_epochs >= epochs``) is allowed: the LR then only rises.
    """
    if kind not in SCHEDULES:
        raise InputError(f"--scheduler: unknown schedule {kind!r} (expected one of {', '.join(SCHEDULES)})")
    if epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {epochs}")
    if warmup_epochs < 0:
        raise InputError(f"--warmup-epochs must be at least 0, got {warmup_epochs}")
    if steps_per_epoch < 1:
        raise InputError(f"an epoch needs at least one iteration, got {steps_per_epoch} (too few training images?)")
    if gamma <= 0:
        raise InputError(f"--gamma must be positive, got {gamma}")
    milestones = tuple(milestones)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: lr_factor(it, kind, epochs, warmup_epochs, steps_per_epoch, milestones, gamma)
    )
