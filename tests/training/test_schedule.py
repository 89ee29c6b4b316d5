"""The per-iteration LR schedule: warm-up, then step decay or cosine, checked by hand."""

from __future__ import annotations

import math

import pytest
import torch

from metricattack.errors import InputError
from metricattack.training.schedule import build_scheduler

BASE_LR = 0.2
# 8 epochs of 5 iterations, 2 warm-up epochs (10 iterations); step milestones at epochs 4 and 6.
EPOCHS, WARMUP, STEPS, MILESTONES = 8, 2, 5, (4, 6)
BY_HAND = {
    "step": {0: 0.1, 1: 0.1 + 0.9 * 1 / 10, 5: 0.55, 9: 0.1 + 0.9 * 9 / 10, 10: 1.0, 19: 1.0, 20: 0.1, 29: 0.1,
             30: 0.01, 39: 0.01},
    "cosine": {0: 0.1, 5: 0.55, 10: 1.0, 15: (1 + math.cos(math.pi * 5 / 30)) / 2, 25: 0.5,
               39: (1 + math.cos(math.pi * 29 / 30)) / 2, 40: 0.0},
}  # fmt: skip


def lrs_by_iteration(kind: str, iterations: int) -> list[float]:
    """The LR used at each iteration 0..iterations-1 of a run stepping the scheduler every iteration."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=BASE_LR)
    scheduler = build_scheduler(optimizer, kind, EPOCHS, WARMUP, STEPS, MILESTONES, gamma=0.1)
    lrs = []
    for _ in range(iterations):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize("kind", ["step", "cosine"])
def test_lr_at_chosen_iterations_equals_hand_computed_values(kind):
    lrs = lrs_by_iteration(kind, EPOCHS * STEPS + 1)
    for iteration, factor in BY_HAND[kind].items():
        assert lrs[iteration] == pytest.approx(BASE_LR * factor, abs=1e-12), iteration


def test_no_warmup_and_a_warmup_longer_than_the_run():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    assert build_scheduler(optimizer, "cosine", 4, 0, 5).get_last_lr() == [1.0]
    scheduler = build_scheduler(optimizer, "cosine", 1, 3, 5)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr()[0] == pytest.approx(0.1 + 0.9 / 3)


@pytest.mark.parametrize(
    "arguments,message",
    [(("linear", 8, 2, 5), r"--scheduler: unknown schedule 'linear' \(expected one of step, cosine\)"),
     (("step", 0, 2, 5), "--epochs must be at least 1"),
     (("step", 8, -1, 5), "--warmup-epochs must be at least 0"),
     (("step", 8, 2, 0), "an epoch needs at least one iteration"),
     (("step", 8, 2, 5, (4,), 0.0), "--gamma must be positive")],
)  # fmt: skip
def test_bad_arguments_are_input_errors(arguments, message):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    with pytest.raises(InputError, match=message):
        build_scheduler(optimizer, *arguments)
