"""Optimising a print: Adam on W with the texture T = sigmoid(W) (always in [0, 1], no projection), its learning
rate decaying from ``lr`` to 0 along a half cosine over the steps, each step
on fresh renders of the wearer from the training cameras, and optionally through new random cameras
(expectation over transformation, as advPattern's multi-position sampling, plus camera randomisation),
through the torch compositor and the model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from metricattack.data.synthetic import SyntheticConfig
from metricattack.data.synthetic.compositor import composite
from metricattack.errors import NumericalError
from metricattack.wearing.objective import References, WearObjective
from metricattack.wearing.renders import training_batch
from metricattack.wearing.setting import WearSetting

INIT_SCALE = 1.0  # standard deviation of W at the start: a random print around mid-grey


@dataclass
class Optimised:
    """An optimised print and how the optimisation went."""

    texture: torch.Tensor  # (3, h, w) in [0, 1], on the CPU
    history: list[dict[str, float]]  # per step: metric, tv, nps, loss
    renders: int  # renders composited (and passed through the model, forward and backward)
    gradient_passes: int  # forward-backward passes of the model (one per step)


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode without parameter gradients (restored afterwards): gradients reach the texture only."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield model
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
        model.train(was_training)


def optimise_pattern(
    model: nn.Module,
    objective: WearObjective,
    references: References,
    config: SyntheticConfig,
    pid: int,
    setting: WearSetting,
    seed: int,
    device: torch.device,
    progress: bool = True,
) -> Optimised:
    """Optimise a print for ``pid`` (a pid of ``config``) as ``setting`` says; same seed, same print on the CPU."""
    generator = torch.Generator().manual_seed(seed)
    weights = (torch.randn((3, *setting.texture_size), generator=generator) * INIT_SCALE).to(device).requires_grad_(True)
    optimiser = torch.optim.Adam([weights], lr=setting.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, setting.steps)
    history = []
    with frozen(model), tqdm(range(setting.steps), desc=f"pattern {pid}", disable=not progress, leave=False) as bar:
        for step in bar:
            batch, cameras = training_batch(config, pid, setting.area, setting.train_cameras, setting.renders, seed, step, device,
                                            setting.random_cameras)  # fmt: skip
            texture = torch.sigmoid(weights)
            features = model(composite(texture, batch))
            loss, parts = objective(texture, features, cameras.to(device), references)
            if not torch.isfinite(loss):
                raise NumericalError(f"wearable pattern of pid {pid}: the loss is not finite at step {step}")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            history.append(parts)
            bar.set_postfix(metric=f"{parts['metric']:.3f}", tv=f"{parts['tv']:.3f}")
    texture = torch.sigmoid(weights.detach()).cpu()
    return Optimised(texture, history, setting.steps * (setting.renders + setting.random_cameras), setting.steps)
