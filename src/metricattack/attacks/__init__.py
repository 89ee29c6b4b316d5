"""Adversarial metric attacks: metric losses (what is optimised), step rules (how), campaigns (where)."""

from metricattack.attacks.attack import MetricAttack
from metricattack.attacks.losses import NonTargetedMetricLoss, TargetedMetricLoss
from metricattack.attacks.steps import (
    ATTACKS,
    FGSM,
    IFGSM,
    MIFGSM,
    NORMS,
    PGD,
    StepRule,
    build_step_rule,
    default_iterations,
    pixels_to_fraction,
)

__all__ = [
    "ATTACKS",
    "FGSM",
    "IFGSM",
    "MIFGSM",
    "NORMS",
    "PGD",
    "MetricAttack",
    "NonTargetedMetricLoss",
    "StepRule",
    "TargetedMetricLoss",
    "build_step_rule",
    "default_iterations",
    "pixels_to_fraction",
]
